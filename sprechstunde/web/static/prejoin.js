// Pre-join checks (issue 17, item 3): a microphone level meter and a network check.
//
// The level meter reads the current microphone track of LocalMedia through a WebAudio AnalyserNode, so a
// citizen sees that the microphone hears them before anyone else does. The network check gathers ICE
// candidates with the servers the call will use (rendered into the join page as #prejoin-ice, with the same
// time-limited TURN credentials as `welcome`) and says whether picture and sound can flow directly over UDP,
// only through the relay server (TURN), or — with a hint what to do — probably not at all.

import { $, readJson } from "./lib/dom.js";
import { tr } from "./strings.js";

const GATHER_TIMEOUT_MS = 8000;

/** The meter follows whatever microphone track `currentTrack()` returns, until `active()` is false. */
export class LevelMeter {
  constructor(meter, { currentTrack, active }) {
    this.meter = meter;
    this.currentTrack = currentTrack;
    this.active = active;
    this.context = null;
    this.source = null;
    this.analyser = null;
    this.track = null;
    this.samples = null;
    this.level = 0;
    this.timer = null;
  }

  start() {
    if (!this.meter || this.timer !== null) return;
    const Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) return;
    // ~15 updates a second are enough for a level bar and cheap on a phone (no requestAnimationFrame,
    // which stops in a background tab and would leave the bar frozen on its last value).
    this.timer = setInterval(() => this.tick(), 66);
    // Browsers start an AudioContext suspended until the page got a user gesture; resume on the first one.
    const resume = () => this.context && this.context.state === "suspended" && this.context.resume().catch(() => {});
    document.addEventListener("pointerdown", resume, { capture: true });
    document.addEventListener("keydown", resume, { capture: true });
  }

  stop() {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.disconnect();
    if (this.context) this.context.close().catch(() => {});
    this.context = null;
    this.meter.value = 0;
  }

  disconnect() {
    if (this.source) this.source.disconnect();
    this.source = null;
    this.track = null;
  }

  follow(track) {
    this.disconnect();
    if (!track || track.readyState !== "live") return;
    if (!this.context) {
      const Context = window.AudioContext || window.webkitAudioContext;
      this.context = new Context();
      this.analyser = this.context.createAnalyser();
      this.analyser.fftSize = 1024;
      this.samples = new Float32Array(this.analyser.fftSize);
    }
    if (this.context.state === "suspended") this.context.resume().catch(() => {});
    this.source = this.context.createMediaStreamSource(new MediaStream([track]));
    this.source.connect(this.analyser); // not to the speakers: the citizen must not hear themselves
    this.track = track;
  }

  tick() {
    if (!this.active()) {
      this.stop();
      return;
    }
    const track = this.currentTrack();
    if (track !== this.track) this.follow(track);
    let level = 0;
    if (this.track && this.track.enabled && this.analyser) {
      this.analyser.getFloatTimeDomainData(this.samples);
      let sum = 0;
      for (const sample of this.samples) sum += sample * sample;
      const rms = Math.sqrt(sum / this.samples.length);
      // dBFS from -60 (silence) to 0 as 0…100: speech at a normal distance sits in the middle
      const db = rms > 0 ? 20 * Math.log10(rms) : -100;
      level = Math.max(0, Math.min(100, ((db + 60) / 60) * 100));
    }
    // quick to rise, slow to fall, so that the bar is readable
    this.level = level > this.level ? level : this.level * 0.8 + level * 0.2;
    this.meter.value = Math.round(this.level);
  }
}

/**
 * Gather candidates with `iceServers` and classify them: "direct" (UDP works: a server-reflexive
 * candidate, or host candidates and no STUN failure), "relay" (only TURN gave a candidate), "blocked".
 * Resolves to {result, types}; never rejects.
 */
export async function checkNetwork(iceServers, { timeoutMs = GATHER_TIMEOUT_MS } = {}) {
  const servers = Array.isArray(iceServers) ? iceServers : [];
  const urls = servers.flatMap((s) => (Array.isArray(s.urls) ? s.urls : [s.urls])).filter(Boolean);
  const stunConfigured = urls.some((url) => /^stuns?:/i.test(url));
  const found = { host: false, srflx: false, prflx: false, relay: false };
  let stunFailed = false;
  let pc;
  try {
    pc = new RTCPeerConnection({ iceServers: servers });
  } catch {
    return { result: "blocked", types: found };
  }
  try {
    await new Promise((resolve) => {
      const timer = setTimeout(() => {
        if (stunConfigured && !found.srflx) stunFailed = true; // no answer from STUN in time
        resolve();
      }, timeoutMs);
      pc.onicecandidate = (event) => {
        const candidate = event.candidate;
        if (!candidate) {
          clearTimeout(timer);
          resolve();
          return;
        }
        const type = candidate.type || (/ typ (\w+)/.exec(candidate.candidate) || [])[1];
        const protocol = (candidate.protocol || (/ (udp|tcp) /i.exec(candidate.candidate) || [])[1] || "")
          .toLowerCase();
        if (type === "relay") found.relay = true;
        else if (type in found && protocol === "udp") found[type] = true;
      };
      pc.onicecandidateerror = (event) => {
        if (/^stuns?:/i.test(event.url || "")) stunFailed = true;
      };
      pc.createDataChannel("network-check");
      pc.createOffer()
        .then((offer) => pc.setLocalDescription(offer))
        .catch(() => {
          clearTimeout(timer);
          resolve();
        });
    });
  } finally {
    pc.close();
  }
  const direct = found.srflx || (found.host && !(stunConfigured && stunFailed));
  return { result: direct ? "direct" : found.relay ? "relay" : "blocked", types: found };
}

const RESULT_KIND = { direct: "success", relay: "info", blocked: "warning", checking: "info" };

/** Run the network check of the join page (if it has one) and show the result; "Erneut prüfen" repeats it. */
export function startNetworkCheck() {
  const section = $("network-check");
  if (!section || !("RTCPeerConnection" in window)) return;
  const iceServers = (() => {
    const data = readJson("prejoin-ice");
    return Array.isArray(data) ? data : [];
  })();
  const result = $("network-result");
  const retry = $("network-retry");
  const show = (state) => {
    section.dataset.result = state;
    result.className = `notice ${RESULT_KIND[state]}`;
    result.textContent = tr(`call.network.${state}`);
    $("network-hint").hidden = state !== "blocked";
    retry.hidden = state === "checking" || state === "direct";
  };
  const run = async () => {
    show("checking");
    const { result: outcome } = await checkNetwork(iceServers);
    show(outcome);
  };
  retry.addEventListener("click", run);
  run();
}

/** Both checks; `media` is the page's LocalMedia, `active()` says whether the pre-join view still shows. */
export function startPrejoinChecks({ media, active }) {
  const meter = $("mic-level");
  if (meter) new LevelMeter(meter, { currentTrack: () => media.track("audio"), active }).start();
  startNetworkCheck();
}
