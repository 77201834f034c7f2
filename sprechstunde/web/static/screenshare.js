// Screen sharing in the call (issue 17): this page's screen on its screen line, and another's screen shown
// large above the camera tiles.
//
// Sending: the server offers every participant a third uplink m-line (mid "2", peer.js) that the page
// answers without a track; sharing puts the getDisplayMedia track on it (no renegotiation) and tells the
// server `{"type": "screen", "on": true}`, which then forwards it to the others. Stopping — the button or
// the browser's own "stop sharing" (track.onended) — takes the track off and sends `on: false`. One screen
// per consultation: while someone else shares, the server refuses with `screen_busy`.
//
// Receiving: the offers' `streams` map labels the forwarded line kind "screen"; call.js passes the grouped
// tracks to showRemote(), which fills the stage (#screen-stage) or hides it again.

import { $ } from "./lib/dom.js";
import { tr } from "./strings.js";

/** Whether this browser can share a screen at all (phones and most tablets cannot). */
export function canShareScreen() {
  return !!(navigator.mediaDevices && typeof navigator.mediaDevices.getDisplayMedia === "function");
}

const CAPTURE = { video: { frameRate: { ideal: 15, max: 15 } }, audio: false };

export class ScreenShare {
  /**
   * root: #call-app; peer(): the current PeerSession or null; send(msg): a signaling message (false when
   * not connected); status: the StatusLine; nameOf(participantId): the name to show.
   */
  constructor({ root, peer, send, status, nameOf }) {
    this.root = root;
    this.peer = peer;
    this.send = send;
    this.status = status;
    this.nameOf = nameOf;
    this.track = null; // this page's screen while it shares
    this.remote = null; // {participantId, track} shown on the stage
    this.seq = 0;
    this.button = $("screen-button");
    this.stage = $("screen-stage");
    this.video = $("screen-video");
    this.caption = $("screen-caption");
    this.self = $("screen-self");
    this.fullscreen = $("screen-fullscreen");
    if (this.fullscreen && document.fullscreenEnabled) {
      this.fullscreen.hidden = false;
      this.fullscreen.addEventListener("click", () => this.toggleFullscreen());
      document.addEventListener("fullscreenchange", () => this.render());
    }
    if (!this.button) return;
    if (canShareScreen()) {
      this.button.hidden = false;
      this.button.addEventListener("click", () => (this.track ? this.stop() : this.start()));
    } else {
      $("screen-unsupported").hidden = false; // said to screen readers; no dead button for anyone
    }
    this.render();
  }

  /** The local track of the screen line (peer.js asks when it publishes on a new connection). */
  localTrack() {
    return this.track;
  }

  async start() {
    if (this.track) return;
    if (this.remote) {
      this.status.show(tr("call.screen.busy", { name: this.nameOf(this.remote.participantId) }), {
        kind: "warning",
      });
      return;
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getDisplayMedia(CAPTURE);
    } catch (error) {
      // NotAllowedError: the person closed the browser's picker — nothing to say about that
      if (error && error.name !== "NotAllowedError") {
        this.status.show(tr("call.screen.failed"), { kind: "error" });
      }
      return;
    }
    const track = stream.getVideoTracks()[0];
    if (!track) return;
    if ("contentHint" in track) track.contentHint = "detail"; // sharp text rather than smooth motion
    track.onended = () => this.stop(); // the browser's own "stop sharing"
    this.track = track;
    const peer = this.peer();
    if (peer) await peer.replaceLocalTrack("screen", track).catch(() => {});
    this.announce(true);
    this.status.show(tr("call.screen.started.self"));
    this.render();
  }

  /** Stop sharing (button, browser, refusal, leaving); `tell` = false when the call is over anyway. */
  async stop({ tell = true, quiet = false } = {}) {
    const track = this.track;
    if (!track) return;
    this.track = null;
    track.onended = null;
    track.stop();
    const peer = this.peer();
    if (peer) await peer.replaceLocalTrack("screen", null).catch(() => {});
    if (tell) this.announce(false);
    if (!quiet) this.status.show(tr("call.screen.stopped.self"));
    this.render();
  }

  announce(on) {
    this.seq += 1;
    this.send({ type: "screen", id: `s-${this.seq}`, on });
  }

  /** After every welcome: the server of a fresh connection learns whether this page still shares. */
  connected() {
    if (this.track) this.announce(true);
  }

  /** `screen` from the server: another participant started or stopped (the own copy carries an `id`). */
  handleEvent(msg) {
    if (typeof msg.id === "string" || typeof msg.participant_id !== "string") return;
    const key = msg.on ? "call.screen.started" : "call.screen.stopped";
    this.status.show(tr(key, { name: this.nameOf(msg.participant_id) }));
  }

  /** An `error` answering this page's `screen`; true when it was one (call.js shows nothing else). */
  handleError(msg) {
    if (typeof msg.id !== "string" || !msg.id.startsWith("s-")) return false;
    if (msg.code === "screen_busy") {
      this.stop({ tell: false, quiet: true });
      const sharer = this.remote ? this.nameOf(this.remote.participantId) : tr("call.participant.unknown");
      this.status.show(tr("call.screen.busy", { name: sharer }), { kind: "warning" });
      return true;
    }
    if (msg.code === "screen_unavailable") {
      this.stop({ tell: false, quiet: true });
      this.status.show(tr("call.screen.failed"), { kind: "error" });
      return true;
    }
    return false;
  }

  /** The remote tracks by participant (peer.js): show the first shared screen on the stage, or none. */
  showRemote(byParticipant, selfId) {
    let next = null;
    for (const [participantId, tracks] of byParticipant) {
      if (participantId === selfId || !tracks.screen || tracks.screen.readyState !== "live") continue;
      next = { participantId, track: tracks.screen };
      break;
    }
    const same = next && this.remote && next.track === this.remote.track;
    this.remote = next;
    if (!same && this.video) {
      this.video.srcObject = next ? new MediaStream([next.track]) : null;
      if (next) this.video.play().catch(() => {});
    }
    this.render();
  }

  toggleFullscreen() {
    if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
    else this.stage.requestFullscreen().catch(() => {});
  }

  /** Button, banner, stage and caption as the state is now. */
  render() {
    if (this.button) {
      const label = this.button.querySelector(".label");
      if (label) label.textContent = tr(this.track ? "call.screen.stop" : "call.screen.start");
      this.button.classList.toggle("is-sharing", !!this.track);
    }
    if (this.self) this.self.hidden = !this.track;
    if (!this.stage) return;
    const remote = this.remote;
    this.stage.hidden = !remote;
    if (!remote && document.fullscreenElement === this.stage) document.exitFullscreen().catch(() => {});
    if (this.fullscreen) {
      const full = document.fullscreenElement === this.stage;
      this.fullscreen.textContent = tr(full ? "call.screen.fullscreen.exit" : "call.screen.fullscreen");
    }
    this.stage.parentElement.classList.toggle("has-screen", !!remote);
    this.root.classList.toggle("screen-shown", !!remote);
    if (remote) {
      const text = tr("call.screen.of", { name: this.nameOf(remote.participantId) });
      this.caption.textContent = text;
      this.video.setAttribute("aria-label", text);
    }
  }

  /** The call ended: release the screen and empty the stage. */
  clear() {
    this.stop({ tell: false, quiet: true });
    this.showRemote(new Map());
  }
}
