// In-call indicators (issue 17, item 4): what a person sees of the others beyond their picture.
//
// - remote microphone off → a crossed-out microphone on the tile; camera off → the initials and "Kamera aus"
//   instead of a black picture (both also as text for screen readers). The state comes from the signaling
//   message `media-state` and from `media` in `welcome` / `participant-joined` (docs/protocol.md).
// - a connection-quality mark per remote participant from getStats(): packet loss and frame rate of its
//   inbound streams, round-trip time of the connection → good / fair / poor, the numbers in the label.
// - pin (one remote tile large) and fullscreen buttons on every remote tile.
// - on phones the chat sits behind a toggle that counts messages arriving while it is closed.
// - "Verlassen" asks in a modal <dialog> first; Escape or "Im Gespräch bleiben" keep the call.

import { el } from "./lib/dom.js";
import { tr } from "./strings.js";
import { displayName } from "./ui.js";

const STATS_INTERVAL_MS = 2000;
const SVG = "http://www.w3.org/2000/svg";

/** The `media-state` message for this page's microphone and camera (a missing device counts as off). */
export function mediaStateMessage(media) {
  return {
    type: "media-state",
    audio: !!media.track("audio") && media.enabled.audio,
    video: !!media.track("video") && media.enabled.video,
  };
}

function icon(path) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  svg.classList.add("icon");
  const shape = document.createElementNS(SVG, "path");
  shape.setAttribute("d", path);
  svg.append(shape);
  return svg;
}

const ICONS = {
  micOff:
    "M19 11h-1.7c0 .74-.16 1.43-.43 2.05l1.23 1.23A6.9 6.9 0 0 0 19 11zm-4 .16V5a3 3 0 0 0-5.94-.6L15 10.34v.82zM4.27 3 3 4.27l6 6V11a3 3 0 0 0 4.53 2.58l1.66 1.66A5.2 5.2 0 0 1 12 16.3 5.3 5.3 0 0 1 6.7 11H5a7 7 0 0 0 6 6.72V21h2v-3.28a7 7 0 0 0 2.54-.9L19.73 21 21 19.73 4.27 3z",
  pin: "M16 3v2h-1v6l2 3v2h-4v5l-1 1-1-1v-5H7v-2l2-3V5H8V3h8z",
  fullscreen: "M5 5h5v2H7v3H5V5zm9 0h5v5h-2V7h-3V5zM5 14h2v3h3v2H5v-5zm12 3v-3h2v5h-5v-2h3z",
};

/** Rate one participant's connection from the numbers of the last interval. */
export function rate({ loss, rtt, fps, video }) {
  if (loss === null && rtt === null) return "measuring";
  const lossPct = loss || 0;
  const rttMs = rtt || 0;
  const judgeFps = video && fps !== null;
  if (lossPct >= 10 || rttMs >= 500 || (judgeFps && fps < 5)) return "poor";
  if (lossPct >= 3 || rttMs >= 250 || (judgeFps && fps < 12)) return "fair";
  return "good";
}

export class RemoteIndicators {
  /** `tiles`: the page's Tiles (ui.js); `peer()`: the current PeerSession or null. */
  constructor(tiles, { peer }) {
    this.tiles = tiles;
    this.peer = peer;
    this.media = new Map(); // participant id → {audio, video}
    this.previous = new Map(); // inbound-rtp id → {lost, received}
    this.pinned = null;
    this.timer = null;
    this.pc = null;
    document.addEventListener("fullscreenchange", () => this.sync());
    // whoever is pinned may leave (participant-left, a reconnect's reconcile): back to equal tiles
    new MutationObserver(() => {
      if (this.pinned && !this.tiles.has(this.pinned)) this.pin(null);
    }).observe(tiles.list, { childList: true });
  }

  /** Take `media` from participant descriptions (welcome, participant-joined) and decorate every tile. */
  sync(participants = []) {
    for (const p of participants) {
      if (p && p.participant_id && p.media && typeof p.media === "object") {
        this.media.set(p.participant_id, { audio: p.media.audio !== false, video: p.media.video !== false });
      }
    }
    for (const id of this.tiles.ids()) this.decorate(id);
    if (this.pinned && !this.tiles.has(this.pinned)) this.pin(null);
    if (this.timer === null) {
      this.timer = setInterval(() => this.measure().catch(() => {}), STATS_INTERVAL_MS);
    }
  }

  /** A `media-state` message from another participant; returns the state known before (null if none). */
  setMedia(participantId, { audio, video }) {
    if (typeof audio !== "boolean" || typeof video !== "boolean") return null;
    const before = this.media.get(participantId) || null;
    this.media.set(participantId, { audio, video });
    if (this.tiles.has(participantId)) this.decorate(participantId);
    return before;
  }

  stop() {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.media.clear();
    this.previous.clear();
    this.pinned = null;
    this.pc = null;
  }

  tile(participantId) {
    return this.tiles.tiles.get(participantId);
  }

  decorate(participantId) {
    const tile = this.tile(participantId);
    if (!tile) return;
    const name = displayName(tile.participant);
    if (!tile.extras) tile.extras = this.build(tile, participantId);
    const extras = tile.extras;
    const state = this.media.get(participantId) || { audio: true, video: true };
    extras.muted.hidden = state.audio;
    tile.item.classList.toggle("remote-muted", !state.audio);
    tile.item.classList.toggle("camera-off", !state.video);
    extras.cameraOff.hidden = state.video;
    const fullscreen = document.fullscreenElement === tile.item;
    extras.fullscreen.setAttribute(
      "aria-label",
      fullscreen ? tr("call.tile.exit_fullscreen") : tr("call.tile.fullscreen", { name }),
    );
    extras.fullscreen.title = extras.fullscreen.getAttribute("aria-label");
    extras.fullscreen.setAttribute("aria-pressed", String(fullscreen));
    const pinned = this.pinned === participantId;
    extras.pin.setAttribute("aria-pressed", String(pinned));
    extras.pin.setAttribute("aria-label", tr(pinned ? "call.tile.unpin" : "call.tile.pin", { name }));
    extras.pin.title = extras.pin.getAttribute("aria-label");
    if (!extras.quality.dataset.rating) this.showQuality(tile, "measuring", null);
  }

  build(tile, participantId) {
    const muted = el("span", { className: "mute-mark", hidden: true });
    muted.setAttribute("role", "img");
    muted.setAttribute("aria-label", tr("call.remote.muted"));
    muted.title = tr("call.remote.muted");
    muted.append(icon(ICONS.micOff));
    tile.name.parentNode.prepend(muted); // before the name in the label at the bottom of the tile
    const cameraOff = el("p", { className: "camera-off-text", hidden: true }, tr("call.remote.camera_off"));
    const quality = el("p", { className: "quality" });
    quality.setAttribute("role", "img");
    const bars = el("span", { className: "quality-bars" }, el("span"), el("span"), el("span"));
    bars.setAttribute("aria-hidden", "true");
    const qualityText = el("span", { className: "quality-text" });
    qualityText.setAttribute("aria-hidden", "true");
    quality.append(bars, qualityText);
    const actions = el("div", { className: "tile-actions" });
    const pin = el("button", { className: "tile-button", type: "button" });
    pin.append(icon(ICONS.pin));
    pin.addEventListener("click", () => this.pin(this.pinned === participantId ? null : participantId));
    const fullscreen = el("button", { className: "tile-button", type: "button" });
    fullscreen.append(icon(ICONS.fullscreen));
    fullscreen.addEventListener("click", () => this.toggleFullscreen(tile));
    if (!tile.item.requestFullscreen) fullscreen.hidden = true; // iPhone Safari: no element fullscreen
    actions.append(pin, fullscreen);
    tile.item.append(cameraOff, quality, actions);
    return { muted, cameraOff, quality, qualityText, pin, fullscreen };
  }

  pin(participantId) {
    this.pinned = participantId;
    for (const id of this.tiles.ids()) {
      const tile = this.tile(id);
      tile.item.classList.toggle("pinned", id === participantId);
    }
    this.tiles.list.classList.toggle("has-pinned", participantId !== null);
    for (const id of this.tiles.ids()) this.decorate(id);
  }

  async toggleFullscreen(tile) {
    try {
      if (document.fullscreenElement === tile.item) await document.exitFullscreen();
      else await tile.item.requestFullscreen();
    } catch {
      // refused (no user gesture, an iframe without permission): the tile stays as it is
    }
  }

  showQuality(tile, rating, numbers) {
    const { quality, qualityText } = tile.extras;
    const name = displayName(tile.participant);
    const ratingText = tr(`call.quality.${rating}`);
    let label = tr("call.quality.label", { name, rating: ratingText });
    if (numbers) {
      const details = numbers.fps !== null && numbers.video
        ? tr("call.quality.details", numbers)
        : tr("call.quality.details_audio", numbers);
      label = `${label} (${details})`;
    }
    quality.dataset.rating = rating;
    quality.setAttribute("aria-label", label);
    quality.title = label;
    qualityText.textContent = ratingText;
  }

  /** One round of getStats(): loss and frame rate per participant, round-trip time of the connection. */
  async measure() {
    const session = this.peer();
    if (!session || !session.pc || session.closed) return;
    if (this.pc !== session.pc) {
      this.pc = session.pc; // a new connection (after a reconnect) counts from zero again
      this.previous.clear();
    }
    const stats = await session.pc.getStats();
    let rtt = null;
    const totals = new Map(); // participant id → {lost, received, fps}
    const percent = new Intl.NumberFormat(document.documentElement.lang || undefined, {
      maximumFractionDigits: 1,
    });
    for (const report of stats.values()) {
      if (report.type === "candidate-pair" && report.nominated && report.state === "succeeded") {
        if (typeof report.currentRoundTripTime === "number") rtt = report.currentRoundTripTime * 1000;
      }
      if (report.type !== "inbound-rtp") continue;
      const info = report.mid !== undefined ? session.streams[report.mid] : undefined;
      if (!info || !info.participant_id) continue;
      const before = this.previous.get(report.id) || { lost: 0, received: 0 };
      const lost = Math.max(0, (report.packetsLost || 0) - before.lost);
      const received = Math.max(0, (report.packetsReceived || 0) - before.received);
      this.previous.set(report.id, { lost: report.packetsLost || 0, received: report.packetsReceived || 0 });
      const total = totals.get(info.participant_id) || { lost: 0, received: 0, fps: null };
      total.lost += lost;
      total.received += received;
      if (report.kind === "video") total.fps = typeof report.framesPerSecond === "number" ? report.framesPerSecond : 0;
      totals.set(info.participant_id, total);
    }
    for (const id of this.tiles.ids()) {
      if (!this.tile(id).extras) this.decorate(id); // a tile that only its tracks created
      const tile = this.tile(id);
      const total = totals.get(id);
      if (!total || total.received + total.lost === 0) {
        this.showQuality(tile, "measuring", null);
        continue;
      }
      const video = (this.media.get(id) || { video: true }).video;
      const lossPct = (100 * total.lost) / (total.lost + total.received);
      const numbers = {
        loss: percent.format(lossPct), // "0,5" in German
        rtt: rtt === null ? "–" : Math.round(rtt),
        fps: total.fps === null ? null : Math.round(total.fps),
        video,
      };
      const rating = rate({ loss: lossPct, rtt, fps: numbers.fps, video });
      this.showQuality(tile, rating, numbers);
    }
  }
}

/** On phones the chat is behind a toggle; messages arriving while it is closed are counted on it. */
export class ChatToggle {
  constructor({ root, button, badge, panel, input }) {
    this.root = root;
    this.button = button;
    this.badge = badge;
    this.panel = panel;
    this.input = input;
    this.open = false;
    this.unread = 0;
    button.addEventListener("click", () => this.setOpen(!this.open));
    this.render();
  }

  /** Whether the chat is out of sight behind the toggle (on a wide screen it is always shown). */
  hidden() {
    return !this.open && getComputedStyle(this.button).display !== "none";
  }

  arrived(own) {
    if (own || !this.hidden()) return;
    this.unread += 1;
    this.render();
  }

  setOpen(open) {
    this.open = open;
    this.root.classList.toggle("chat-open", open);
    if (open) this.unread = 0;
    this.render();
    if (open) {
      this.panel.scrollIntoView({ block: "nearest" });
      this.input.focus({ preventScroll: true });
    }
  }

  render() {
    this.button.setAttribute("aria-expanded", String(this.open));
    this.badge.hidden = this.unread === 0;
    this.badge.textContent = this.unread ? String(this.unread) : "";
    const label = this.unread ? tr("call.chat.unread", { count: this.unread }) : tr("call.chat.toggle");
    this.button.setAttribute("aria-label", label);
  }
}

/** "Verlassen": ask in the modal dialog; `onLeave` runs only after "Ja, verlassen". */
export function confirmLeave(dialog, onLeave) {
  if (!dialog || typeof dialog.showModal !== "function") {
    onLeave();
    return;
  }
  if (dialog.open) return;
  dialog.returnValue = "";
  dialog.addEventListener(
    "close",
    () => {
      if (dialog.returnValue === "leave") onLeave();
    },
    { once: true },
  );
  dialog.showModal();
}
