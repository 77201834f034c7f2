// The signaling WebSocket (docs/protocol.md): hello/welcome, keep-alive pings and reconnection with backoff.

const NO_RECONNECT_CLOSE_CODES = new Set([1000, 4001, 4002]);
const PING_INTERVAL_MS = 20000;
const PONG_TIMEOUT_MS = 15000;
const INITIAL_ATTEMPTS = 4; // before the first welcome: give up after this many failed connections

export function backoffDelay(attempt) {
  return Math.min(500 * 2 ** attempt, 5000);
}

// `room` only routes: a reverse proxy hashes it so that everyone of a room reaches the same node
// (deploy/nginx.conf); the server trusts nothing but the token sent in `hello`.
export function signalingUrl(loc = window.location, room = "") {
  const query = room ? `?room=${encodeURIComponent(room)}` : "";
  return `${loc.protocol === "https:" ? "wss:" : "ws:"}//${loc.host}/ws${query}`;
}

/**
 * One logical signaling session that survives dropped sockets.
 *
 * handlers: onWelcome(msg, {reconnected}), onMessage(msg), onReconnecting(attempt, delayMs),
 *           onRejected(code, message)  — hello refused (invalid link, room full …) or no connection,
 *           onEnded(closeCode)          — the server ended the session (1000 without leave, 4001, 4002).
 */
export class SignalingClient {
  constructor({ url, token, name, resumeStorageKey, handlers }) {
    this.url = url;
    this.token = token;
    this.name = name;
    this.resumeStorageKey = resumeStorageKey;
    this.handlers = handlers;
    this.ws = null;
    this.joined = false; // welcome received on the current socket
    this.everJoined = false;
    this.stopped = false;
    this.attempt = 0;
    this.nextId = 1;
    this.helloId = null;
    this.reconnectTimer = null;
    this.pingTimer = null;
    this.pingSentAt = null;
    this.redirect = null; // the URL of the node hosting the room, for the next attempt only
    this.redirects = 0;
    this.onlineListener = () => {
      if (this.reconnectTimer !== null) {
        clearTimeout(this.reconnectTimer);
        this.reconnectTimer = null;
        this.connect();
      }
    };
    window.addEventListener("online", this.onlineListener);
  }

  get resume() {
    try {
      return sessionStorage.getItem(this.resumeStorageKey);
    } catch {
      return null;
    }
  }

  set resume(value) {
    try {
      if (value) sessionStorage.setItem(this.resumeStorageKey, value);
      else sessionStorage.removeItem(this.resumeStorageKey);
    } catch {
      // storage disabled: resuming just won't survive a reload
    }
  }

  get connected() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  connect() {
    if (this.stopped) return;
    this.reconnectTimer = null;
    this.joined = false;
    // A redirect (`wrong_node`) is used for one attempt; afterwards the proxy chooses again.
    const url = this.redirect || this.url;
    this.redirect = null;
    let ws;
    try {
      ws = new WebSocket(url);
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      if (ws !== this.ws) return;
      this.helloId = this.nextId++;
      this.sendRaw({
        type: "hello",
        id: this.helloId,
        v: 1,
        token: this.token,
        name: this.name,
        resume: this.resume,
      });
    };
    ws.onmessage = (event) => {
      if (ws !== this.ws) return;
      const msg = parseMessage(event.data);
      if (msg) this.dispatch(msg);
    };
    ws.onclose = (event) => {
      if (ws !== this.ws) return;
      this.ws = null;
      this.lostConnection(event.code);
    };
    // onerror is always followed by onclose
  }

  dispatch(msg) {
    if (msg.type === "pong") {
      this.pingSentAt = null;
      return;
    }
    if (msg.type === "welcome") {
      const reconnected = this.everJoined;
      this.joined = true;
      this.everJoined = true;
      this.attempt = 0;
      this.redirects = 0;
      if (typeof msg.resume === "string") this.resume = msg.resume;
      this.startPing();
      this.handlers.onWelcome(msg, { reconnected });
      return;
    }
    if (msg.type === "error" && !this.joined && msg.id === this.helloId) {
      this.helloRefused(msg);
      return;
    }
    this.handlers.onMessage(msg);
  }

  helloRefused(msg) {
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close(1000);
    if (msg.code === "wrong_node" && typeof msg.node === "string" && this.redirects < 3) {
      // The consultation runs on another server process: the reverse proxy routes ?node= to it
      // (same origin, so the page's connect-src 'self' still holds).
      this.redirects += 1;
      const target = new URL(this.url);
      target.searchParams.set("node", msg.node);
      this.redirect = target.href;
      this.connect();
      return;
    }
    if (this.resume && !["invalid_token", "expired", "unknown_room", "room_full",
      "unsupported_version"].includes(msg.code)) {
      // The resume secret was not accepted (e.g. malformed): join afresh.
      this.resume = null;
      this.connect();
      return;
    }
    this.stop();
    this.handlers.onRejected(msg.code, msg.message);
  }

  lostConnection(code) {
    this.stopPing();
    this.joined = false;
    if (this.stopped) return;
    if (NO_RECONNECT_CLOSE_CODES.has(code)) {
      this.stop();
      this.handlers.onEnded(code);
      return;
    }
    if (!this.everJoined && this.attempt >= INITIAL_ATTEMPTS) {
      this.stop();
      this.handlers.onRejected("connection", "");
      return;
    }
    this.scheduleReconnect();
  }

  scheduleReconnect() {
    if (this.stopped || this.reconnectTimer !== null) return;
    const delay = backoffDelay(this.attempt);
    this.attempt += 1;
    if (this.everJoined) this.handlers.onReconnecting(this.attempt, delay);
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }

  startPing() {
    this.stopPing();
    this.pingTimer = setInterval(() => {
      if (this.pingSentAt !== null && performance.now() - this.pingSentAt > PONG_TIMEOUT_MS) {
        this.abandonSocket();
        return;
      }
      if (this.pingSentAt === null) this.pingSentAt = performance.now();
      this.send({ type: "ping" });
    }, PING_INTERVAL_MS);
  }

  stopPing() {
    if (this.pingTimer !== null) clearInterval(this.pingTimer);
    this.pingTimer = null;
    this.pingSentAt = null;
  }

  /** The socket looks dead (no pong): drop it without waiting for a close handshake, then reconnect. */
  abandonSocket() {
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      try {
        ws.close();
      } catch {
        // already closing
      }
    }
    this.lostConnection(1006);
  }

  sendRaw(msg) {
    if (!this.connected) return false;
    this.ws.send(JSON.stringify(msg));
    return true;
  }

  /** Send a message on the joined session; adds an `id` and returns it (null if not connected). */
  send(msg) {
    if (!this.joined) return null;
    const id = msg.id ?? this.nextId++;
    return this.sendRaw({ ...msg, id }) ? id : null;
  }

  /** Leave for good: tell the server, then close (the server closes with 1000 itself). */
  leave() {
    const ws = this.ws;
    const wasJoined = this.joined;
    this.stop();
    this.resume = null;
    if (!ws) return;
    if (wasJoined && ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify({ type: "leave", id: this.nextId++ }));
      setTimeout(() => {
        if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) ws.close(1000);
      }, 2000);
    } else {
      ws.close(1000);
    }
  }

  stop() {
    this.stopped = true;
    this.stopPing();
    if (this.reconnectTimer !== null) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    window.removeEventListener("online", this.onlineListener);
  }
}

/** A server frame as an object, or null for anything that is not a JSON object (ignored by callers). */
export function parseMessage(data) {
  try {
    const msg = JSON.parse(data);
    return msg && typeof msg === "object" ? msg : null;
  } catch {
    return null;
  }
}
