// DOM helpers of the call page. Text from other people goes in with textContent only, never as HTML.

import { el } from "./lib/dom.js";
import { dateText } from "./lib/intl.js";
import { tr } from "./strings.js";

export function displayName(participant) {
  const name = participant && typeof participant.name === "string" ? participant.name.trim() : "";
  if (name) return name;
  const role = participant && participant.role;
  return role ? tr(`call.role.${role}`) : tr("call.participant.unknown");
}

function initials(name) {
  const parts = name.split(/\s+/).filter(Boolean);
  const letters = parts.length > 1 ? [parts[0], parts[parts.length - 1]] : parts;
  return letters.map((part) => Array.from(part)[0] || "").join("").toUpperCase();
}

/** One tile per remote participant: video (with its audio) and a name label. */
export class Tiles {
  constructor(list, waiting) {
    this.list = list;
    this.waiting = waiting;
    this.tiles = new Map();
  }

  has(participantId) {
    return this.tiles.has(participantId);
  }

  ids() {
    return [...this.tiles.keys()];
  }

  info(participantId) {
    const tile = this.tiles.get(participantId);
    return tile ? tile.participant : null;
  }

  upsert(participant) {
    const id = participant.participant_id;
    let tile = this.tiles.get(id);
    if (!tile) {
      const item = el("li", { className: "tile no-video" });
      item.dataset.participantId = id;
      const video = el("video");
      video.autoplay = true;
      video.playsInline = true;
      const avatar = el("span", { className: "avatar" });
      avatar.setAttribute("aria-hidden", "true");
      const label = el("p", { className: "tile-name" });
      const name = el("span", { className: "name" });
      const role = el("span", { className: "role" });
      label.append(name, role);
      item.append(video, avatar, label);
      this.list.append(item);
      tile = {
        item,
        video,
        avatar,
        name,
        role,
        participant: {},
        audio: null,
        videoTrack: null,
        soundButton: null,
      };
      this.tiles.set(id, tile);
    }
    tile.participant = { ...tile.participant, ...participant };
    const shown = displayName(tile.participant);
    const roleText = tile.participant.role ? tr(`call.role.${tile.participant.role}`) : "";
    tile.name.textContent = shown;
    tile.role.textContent = roleText && roleText !== shown ? roleText : "";
    tile.avatar.textContent = initials(shown);
    tile.video.setAttribute("aria-label", tr("call.participant.video", { name: shown }));
    if (tile.participant.role) tile.item.dataset.role = tile.participant.role;
    this.updateLayout();
    return tile;
  }

  remove(participantId) {
    const tile = this.tiles.get(participantId);
    if (!tile) return;
    tile.video.srcObject = null;
    tile.item.remove();
    this.tiles.delete(participantId);
    this.updateLayout();
  }

  /** Keep exactly the given participants (after a (re)welcome). */
  reconcile(participants) {
    const keep = new Set(participants.map((p) => p.participant_id));
    for (const id of this.ids()) if (!keep.has(id)) this.remove(id);
    for (const participant of participants) this.upsert(participant);
  }

  setTracks(participantId, { audio = null, video = null }) {
    const tile = this.tiles.get(participantId);
    if (!tile) return;
    if (tile.audio !== audio || tile.videoTrack !== video) {
      tile.audio = audio;
      tile.videoTrack = video;
      const tracks = [audio, video].filter(Boolean);
      tile.video.srcObject = tracks.length ? new MediaStream(tracks) : null;
      if (tracks.length) this.play(tile);
      if (video) video.onmute = video.onunmute = () => this.refreshVideoState(tile);
    }
    this.refreshVideoState(tile);
  }

  play(tile) {
    tile.video.play().catch((error) => {
      if (error.name !== "NotAllowedError") return;
      // Autoplay with sound refused (no user gesture yet): show the picture muted and offer a button.
      tile.video.muted = true;
      tile.video.play().catch(() => {});
      this.offerSound();
    });
  }

  offerSound() {
    for (const tile of this.tiles.values()) {
      if (tile.soundButton || !tile.video.muted) continue;
      const button = el("button", { className: "button primary sound-button" }, tr("call.audio.enable"));
      button.type = "button";
      button.addEventListener("click", () => this.enableSound());
      tile.item.append(button);
      tile.soundButton = button;
    }
  }

  enableSound() {
    let focusAfter = null;
    for (const tile of this.tiles.values()) {
      tile.video.muted = false;
      tile.video.play().catch(() => {});
      if (tile.soundButton && tile.soundButton === document.activeElement) {
        // the button goes away: the keyboard focus stays on the tile (its next button), not the page's top
        focusAfter = tile.item.querySelector("button:not(.sound-button)") || document.getElementById("mic-button");
      }
      if (tile.soundButton) tile.soundButton.remove();
      tile.soundButton = null;
    }
    if (focusAfter) focusAfter.focus();
  }

  refreshVideoState(tile) {
    const showing = tile.videoTrack && !tile.videoTrack.muted && tile.videoTrack.readyState === "live";
    tile.item.classList.toggle("no-video", !showing);
  }

  clear() {
    for (const id of this.ids()) this.remove(id);
  }

  updateLayout() {
    const count = this.tiles.size;
    this.list.dataset.count = String(count);
    this.waiting.hidden = count > 0;
  }
}

/** The chat log. */
export class ChatLog {
  constructor(list, empty, lang) {
    this.list = list;
    this.empty = empty;
    this.lang = lang;
  }

  append({ name, text, own, sentAt }) {
    const item = el("li", { className: own ? "chat-message own" : "chat-message" });
    const meta = el("p", { className: "chat-meta" });
    meta.append(el("span", { className: "chat-name" }, own ? `${name} (${tr("call.you")})` : name));
    const when = sentAt ? new Date(sentAt) : new Date();
    if (!Number.isNaN(when.getTime())) {
      const clock = dateText(when, this.lang, { hour: "2-digit", minute: "2-digit" });
      const time = el("time", { className: "chat-time" }, clock);
      time.dateTime = when.toISOString();
      meta.append(" ", time);
    }
    item.append(meta, el("p", { className: "chat-text" }, text));
    const list = this.list;
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    list.append(item);
    this.empty.hidden = true;
    // Follow new messages unless the reader scrolled up; never scroll the page itself.
    if (atBottom || own) list.scrollTop = list.scrollHeight;
  }
}

/** The aria-live status line. */
export class StatusLine {
  constructor(node) {
    this.node = node;
    this.timer = null;
  }

  show(text, { kind = "info", sticky = false } = {}) {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.node.dataset.kind = kind;
    this.node.textContent = text;
    if (!sticky) {
      this.timer = setTimeout(() => {
        this.node.textContent = "";
        this.node.dataset.kind = "";
      }, 8000);
    }
  }
}
