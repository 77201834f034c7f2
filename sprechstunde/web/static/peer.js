// The RTCPeerConnection to the server. The server is the (impolite) offerer; this side only answers.
//
// m-lines: mid "0" (audio), "1" (camera) and "2" (screen, silent until screenshare.js puts a track on it)
// carry what this participant publishes; every other m-line carries one track of another participant, as
// described by the `streams` map of each offer (kind "audio", "video" or "screen").

const RECEIVING = new Set(["recvonly", "sendrecv"]);
const UPLINK = { 0: "audio", 1: "video", 2: "screen" }; // mid → the local source it sends

export class PeerSession {
  /**
   * send(msg): send a signaling message; localTrack(source): the current local track ("audio", "video",
   * "screen") or null; onRemoteTracks(Map participantId → {audio, video, screen}); onError(error).
   */
  constructor({ iceServers, send, localTrack, onRemoteTracks, onError, onStateChange }) {
    this.send = send;
    this.localTrack = localTrack;
    this.onRemoteTracks = onRemoteTracks;
    this.onError = onError;
    this.streams = {};
    this.published = new Set(); // mids whose sender got the local track on this connection
    this.answered = false; // candidates are held back until the first answer went out
    this.pendingCandidates = [];
    this.queue = Promise.resolve();
    this.offerSeq = 0;
    this.closed = false;

    const pc = new RTCPeerConnection({ iceServers: Array.isArray(iceServers) ? iceServers : [] });
    this.pc = pc;
    pc.onicecandidate = (event) => {
      if (this.closed) return;
      const candidate = event.candidate && event.candidate.candidate ? event.candidate.toJSON() : null;
      if (candidate && /\.local\b/.test(candidate.candidate)) return; // the server ignores mDNS names
      if (this.answered) this.send({ type: "candidate", candidate });
      else this.pendingCandidates.push(candidate);
    };
    pc.ontrack = () => this.syncTracks();
    pc.onconnectionstatechange = () => {
      if (!this.closed && onStateChange) onStateChange(pc.connectionState);
    };
  }

  /** Apply a server offer and answer it. Offers are handled one at a time, newest wins. */
  handleOffer(msg) {
    const seq = ++this.offerSeq;
    if (msg.streams && typeof msg.streams === "object") Object.assign(this.streams, msg.streams);
    this.queue = this.queue
      .then(() => this.applyOffer(msg.sdp, seq))
      .catch((error) => {
        if (!this.closed) this.onError(error);
      });
  }

  async applyOffer(sdp, seq) {
    const pc = this.pc;
    if (this.closed || seq !== this.offerSeq) return; // superseded by a newer offer
    if (pc.signalingState !== "stable") {
      // Polite peer: drop whatever half-finished negotiation we were in.
      await pc.setLocalDescription({ type: "rollback" });
    }
    await pc.setRemoteDescription({ type: "offer", sdp });
    await this.publishLocal();
    const answer = await pc.createAnswer();
    if (this.closed) return;
    if (seq !== this.offerSeq) {
      // A newer offer is queued and replaces this one; it rolls this one back before applying itself.
      return;
    }
    await pc.setLocalDescription(answer);
    if (this.closed) return;
    this.send({ type: "answer", sdp: pc.localDescription.sdp });
    if (!this.answered) {
      this.answered = true;
      for (const candidate of this.pendingCandidates.splice(0)) {
        this.send({ type: "candidate", candidate });
      }
    }
    this.syncTracks();
  }

  /** Attach microphone, camera and screen to m-lines 0-2 (once per connection) and send on them; the
   * screen line is answered sendrecv even without a track, so that sharing needs no renegotiation. */
  async publishLocal() {
    for (const transceiver of this.pc.getTransceivers()) {
      const mid = transceiver.mid;
      const source = UPLINK[mid];
      if (!source) continue;
      if (transceiver.direction !== "sendrecv") transceiver.direction = "sendrecv";
      if (this.published.has(mid)) continue;
      await transceiver.sender.replaceTrack(this.localTrack(source));
      this.published.add(mid);
    }
  }

  /** Replace the local track of `source` ("audio", "video", "screen") without renegotiation. */
  async replaceLocalTrack(source, track) {
    for (const transceiver of this.pc.getTransceivers()) {
      if (!this.published.has(transceiver.mid)) continue;
      if (UPLINK[transceiver.mid] !== source) continue;
      await transceiver.sender.replaceTrack(track);
    }
  }

  /** Group the receiving tracks by participant according to the `streams` maps of the offers. */
  syncTracks() {
    if (this.closed) return;
    const byParticipant = new Map();
    for (const transceiver of this.pc.getTransceivers()) {
      const info = transceiver.mid !== null ? this.streams[transceiver.mid] : undefined;
      if (!info || !info.participant_id) continue;
      const direction = transceiver.currentDirection;
      if (direction !== null && !RECEIVING.has(direction)) continue;
      const track = transceiver.receiver.track;
      const kind = ["audio", "video", "screen"].includes(info.kind) ? info.kind : track.kind;
      if (!byParticipant.has(info.participant_id)) {
        byParticipant.set(info.participant_id, { audio: null, video: null, screen: null });
      }
      byParticipant.get(info.participant_id)[kind] = track;
    }
    this.onRemoteTracks(byParticipant);
  }

  async addRemoteCandidate(candidate) {
    try {
      await this.pc.addIceCandidate(candidate || null);
    } catch {
      // candidates for an old or rolled-back description are harmless
    }
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    this.pc.onicecandidate = null;
    this.pc.ontrack = null;
    this.pc.onconnectionstatechange = null;
    this.pc.close();
  }
}
