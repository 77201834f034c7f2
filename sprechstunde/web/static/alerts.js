// "Someone is waiting" on the advisor console (issue 17, item 8). An advisor works in other windows while
// the console sits in a background tab, so a new citizen in their lanes must reach them there:
// - a short tone (Web Audio, no sound file), which the advisor can turn off; remembered in this browser;
// - "(N) …" in the tab title while N people wait;
// - a desktop notification, once the advisor allowed them (asked by a button, never on page load).
// Only for entries new since the previous list: not for the list right after loading, not again for
// someone who was already there.

import { tr } from "./strings.js";

const SOUND_KEY = "sprechstunde.console.sound";
const NOTIFICATION_TAG = "sprechstunde-queue";
// Two short sine tones, high then lower: audible without being shrill, over in a third of a second.
const TONES = [
  { at: 0, hz: 880 },
  { at: 0.18, hz: 660 },
];

function readSoundSetting() {
  try {
    return localStorage.getItem(SOUND_KEY) !== "off";
  } catch {
    return true; // storage disabled: the default, sound on
  }
}

function writeSoundSetting(on) {
  try {
    localStorage.setItem(SOUND_KEY, on ? "on" : "off");
  } catch {
    // storage disabled: the choice lasts for this page only
  }
}

export class WaitingAlerts {
  /**
   * soundButton: toggle with aria-pressed; permissionButton: asks for desktop notifications;
   * state: a line that says what the browser allows. The page title at construction is the base title.
   */
  constructor({ soundButton, permissionButton, state }) {
    this.soundButton = soundButton;
    this.permissionButton = permissionButton;
    this.state = state;
    this.baseTitle = document.title;
    this.known = null; // entry ids of the previous list; null until the first list arrived
    this.sound = readSoundSetting();
    this.audio = null;
    this.blocked = false; // a tone was due while the browser still held audio back
    // read by the browser tests: what the advisor was alerted with
    this.stats = { played: 0, notified: 0, audioState: "none" };
    window.sprechstundeAlerts = this.stats;

    soundButton.addEventListener("click", () => this.setSound(!this.sound));
    permissionButton.addEventListener("click", () => this.askPermission());
    // Browsers start audio only after the person interacted with the page: the first click or key
    // prepares the tone, so the one that matters (a citizen arrives later) can sound.
    const unlock = () => {
      if (this.sound) this.audioContext();
    };
    document.addEventListener("pointerdown", unlock, { capture: true, once: true });
    document.addEventListener("keydown", unlock, { capture: true, once: true });
    this.render();
  }

  /** A new list of waiting entries arrived (each with entry_id and topic). */
  update(entries) {
    const ids = new Set(entries.map((entry) => entry.entry_id));
    const added = this.known === null ? [] : entries.filter((entry) => !this.known.has(entry.entry_id));
    this.known = ids;
    document.title = entries.length ? `(${entries.length}) ${this.baseTitle}` : this.baseTitle;
    if (!added.length) return;
    if (this.sound) this.playTone();
    this.notify(added, entries.length);
  }

  setSound(on) {
    this.sound = on;
    writeSoundSetting(on);
    if (on) this.audioContext(); // the click itself lets the browser start audio
    else this.blocked = false;
    this.render();
  }

  audioContext() {
    const Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) return null;
    if (!this.audio) this.audio = new Context();
    if (this.audio.state === "suspended") {
      this.audio.resume().then(() => {
        this.stats.audioState = this.audio.state;
        this.render();
      }, () => {});
    }
    this.stats.audioState = this.audio.state;
    return this.audio;
  }

  /** The tone; false when the browser has no Web Audio or holds audio back until a click. */
  playTone() {
    const context = this.audioContext();
    if (!context) return false;
    if (context.state !== "running") {
      this.blocked = true;
      this.render();
      return false;
    }
    const start = context.currentTime + 0.02;
    for (const tone of TONES) {
      const oscillator = context.createOscillator();
      const gain = context.createGain();
      oscillator.type = "sine";
      oscillator.frequency.value = tone.hz;
      gain.gain.setValueAtTime(0.0001, start + tone.at);
      gain.gain.exponentialRampToValueAtTime(0.25, start + tone.at + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, start + tone.at + 0.15);
      oscillator.connect(gain).connect(context.destination);
      oscillator.start(start + tone.at);
      oscillator.stop(start + tone.at + 0.16);
    }
    this.blocked = false;
    this.stats.played += 1;
    this.render();
    return true;
  }

  notify(added, count) {
    if (!("Notification" in window) || Notification.permission !== "granted") return;
    const topics = added.map((entry) => entry.topic || "–").join(", ");
    try {
      const notification = new Notification(tr("console.alerts.notification", { count }), {
        body: tr("console.alerts.notification_body", { topics }),
        tag: NOTIFICATION_TAG, // a newer one replaces the older instead of piling up
        lang: document.documentElement.lang || undefined,
      });
      notification.addEventListener("click", () => {
        window.focus();
        notification.close();
      });
      this.stats.notified += 1;
    } catch {
      // e.g. Android Chrome allows notifications only from a service worker: the title and tone remain
    }
  }

  async askPermission() {
    if (!("Notification" in window)) return;
    try {
      await Notification.requestPermission();
    } catch {
      // very old browsers take a callback instead; they keep "default" and the button stays
    }
    this.render();
  }

  render() {
    this.soundButton.setAttribute("aria-pressed", String(this.sound));
    const supported = "Notification" in window;
    const permission = supported ? Notification.permission : "unsupported";
    this.permissionButton.hidden = permission !== "default";
    let text = "";
    if (this.sound && this.blocked && (!this.audio || this.audio.state !== "running")) {
      text = tr("console.alerts.sound_blocked");
    } else if (permission === "granted") {
      text = tr("console.alerts.granted");
    } else if (permission === "denied") {
      text = tr("console.alerts.denied");
    }
    this.state.textContent = text;
    this.state.hidden = !text;
  }
}
