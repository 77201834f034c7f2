// Local camera and microphone: acquisition with clear failure reasons, device switching, on/off.

const VIDEO_CONSTRAINTS = {
  width: { ideal: 640 },
  height: { ideal: 360 },
  frameRate: { ideal: 24, max: 30 },
};
const AUDIO_CONSTRAINTS = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
const KIND_OF = { audio: "audioinput", video: "videoinput" };

function constraintsFor(kind, deviceId, strict = true) {
  const base = kind === "video" ? VIDEO_CONSTRAINTS : AUDIO_CONSTRAINTS;
  if (!deviceId) return { ...base };
  return { ...base, deviceId: strict ? { exact: deviceId } : { ideal: deviceId } };
}

// The camera and microphone chosen last in this browser, so that the next call (the advisor going from
// one citizen to the next without a pre-join form) opens the same ones; `ideal`, so a device that is gone
// falls back to the default instead of failing.
const DEVICE_KEY = "sprechstunde.device.";

function rememberedDevice(kind) {
  try {
    return localStorage.getItem(DEVICE_KEY + kind) || "";
  } catch {
    return "";
  }
}

function rememberDevice(kind, deviceId) {
  try {
    localStorage.setItem(DEVICE_KEY + kind, deviceId);
  } catch {
    // storage disabled: the next call starts with the default devices
  }
}

/** A short reason for a getUserMedia failure: denied | missing | busy | failed. */
function reasonOf(error) {
  switch (error && error.name) {
    case "NotAllowedError":
    case "SecurityError":
    case "PermissionDeniedError":
      return "denied";
    case "NotFoundError":
    case "DevicesNotFoundError":
    case "OverconstrainedError":
      return "missing";
    case "NotReadableError":
    case "TrackStartError":
    case "AbortError":
      return "busy";
    default:
      return "failed";
  }
}

export class LocalMedia {
  constructor() {
    this.tracks = { audio: null, video: null };
    this.enabled = { audio: true, video: true };
    this.stream = new MediaStream();
    this.onTrackChanged = () => {}; // (kind, track|null)
  }

  static get supported() {
    return !!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia);
  }

  track(kind) {
    return this.tracks[kind];
  }

  deviceId(kind) {
    const track = this.tracks[kind];
    return track ? track.getSettings().deviceId || "" : "";
  }

  /**
   * Open camera and microphone. Resolves to {problem}: null when both work, otherwise one of
   * insecure | denied | missing | no_camera | no_microphone | busy | failed. Never rejects.
   */
  async start() {
    if (!LocalMedia.supported) return { problem: "insecure" };
    try {
      const stream = await navigator.mediaDevices.getUserMedia({
        audio: constraintsFor("audio", rememberedDevice("audio"), false),
        video: constraintsFor("video", rememberedDevice("video"), false),
      });
      this.adopt("audio", stream.getAudioTracks()[0] || null);
      this.adopt("video", stream.getVideoTracks()[0] || null);
      return { problem: null };
    } catch (error) {
      if (reasonOf(error) === "denied") return { problem: "denied" };
    }
    // One of the two is missing or busy: try each on its own.
    const reasons = {};
    for (const kind of ["audio", "video"]) {
      try {
        const stream = await navigator.mediaDevices.getUserMedia({
          [kind]: constraintsFor(kind, rememberedDevice(kind), false),
        });
        this.adopt(kind, stream.getTracks()[0] || null);
      } catch (error) {
        reasons[kind] = reasonOf(error);
      }
    }
    if (reasons.audio && reasons.video) {
      const all = [reasons.audio, reasons.video];
      if (all.includes("denied")) return { problem: "denied" };
      if (all.every((r) => r === "missing")) return { problem: "missing" };
      if (all.includes("busy")) return { problem: "busy" };
      return { problem: "failed" };
    }
    if (reasons.video) return { problem: reasons.video === "busy" ? "busy" : "no_camera" };
    if (reasons.audio) return { problem: reasons.audio === "busy" ? "busy" : "no_microphone" };
    return { problem: null };
  }

  adopt(kind, track) {
    const old = this.tracks[kind];
    if (old === track) return;
    if (old) {
      this.stream.removeTrack(old);
      old.stop();
    }
    this.tracks[kind] = track;
    if (track) {
      track.enabled = this.enabled[kind];
      this.stream.addTrack(track);
    }
    this.onTrackChanged(kind, track);
  }

  /** Switch to another device ("" = none). Rejects if the new device cannot be opened. */
  async switchDevice(kind, deviceId) {
    if (!deviceId) {
      this.adopt(kind, null);
      return null;
    }
    if (deviceId === this.deviceId(kind)) return this.tracks[kind];
    // Phones cannot open two cameras at once: release the old one first.
    const previous = this.deviceId(kind);
    if (kind === "video") this.adopt(kind, null);
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ [kind]: constraintsFor(kind, deviceId) });
      const track = stream.getTracks()[0];
      this.adopt(kind, track);
      rememberDevice(kind, deviceId);
      return track;
    } catch (error) {
      if (kind === "video" && previous) {
        try {
          const stream = await navigator.mediaDevices.getUserMedia({
            video: constraintsFor("video", previous),
          });
          this.adopt(kind, stream.getTracks()[0]);
        } catch {
          // stay without camera
        }
      }
      throw error;
    }
  }

  setEnabled(kind, on) {
    this.enabled[kind] = on;
    if (this.tracks[kind]) this.tracks[kind].enabled = on;
  }

  /** {audioinput: [...], videoinput: [...]} — MediaDeviceInfo lists (labels only after permission). */
  async devices() {
    const result = { audioinput: [], videoinput: [] };
    if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return result;
    try {
      for (const device of await navigator.mediaDevices.enumerateDevices()) {
        if (result[device.kind] && device.deviceId) result[device.kind].push(device);
      }
    } catch {
      // no device list: the selects offer only "none" and the current device
    }
    return result;
  }

  stop() {
    for (const kind of Object.keys(KIND_OF)) this.adopt(kind, null);
  }
}
