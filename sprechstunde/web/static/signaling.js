// The signaling WebSocket (docs/protocol.md): hello/welcome, keep-alive pings and reconnection with backoff.

import { ReconnectingSocket, socketUrl } from "./lib/socket.js";

const NO_RECONNECT_CLOSE_CODES = new Set([1000, 4001, 4002]);
const INITIAL_ATTEMPTS = 4; // before the first welcome: give up after this many failed connections

// `room` only routes: a reverse proxy hashes it so that everyone of a room reaches the same node
// (deploy/nginx.conf); the server trusts nothing but the token sent in `hello`.
export function signalingUrl(loc = window.location, room = "") {
  const query = room ? `?room=${encodeURIComponent(room)}` : "";
  return socketUrl(`/ws${query}`, loc);
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
    this.joined = false; // welcome received on the current socket
    this.everJoined = false;
    this.nextId = 1;
    this.helloId = null;
    this.redirect = null; // the URL of the node hosting the room, for the next attempt only
    this.redirects = 0;
    this.socket = new ReconnectingSocket({
      url: () => {
        // A redirect (`wrong_node`) is used for one attempt; afterwards the proxy chooses again.
        const target = this.redirect || this.url;
        this.redirect = null;
        return target;
      },
      ping: () => ({ type: "ping", id: this.nextId++ }),
      hooks: {
        open: () => this.sayHello(),
        message: (msg) => this.dispatch(msg),
        close: (code) => this.lostConnection(code),
        reconnecting: (attempt, delay) => {
          if (this.everJoined) this.handlers.onReconnecting(attempt, delay);
        },
      },
    });
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
    return this.socket.open;
  }

  connect() {
    this.joined = false;
    this.socket.connect();
  }

  sayHello() {
    this.helloId = this.nextId++;
    this.socket.send({
      type: "hello",
      id: this.helloId,
      v: 1,
      token: this.token,
      name: this.name,
      resume: this.resume,
    });
  }

  dispatch(msg) {
    if (msg.type === "welcome") {
      const reconnected = this.everJoined;
      this.joined = true;
      this.everJoined = true;
      this.socket.resetBackoff();
      this.redirects = 0;
      if (typeof msg.resume === "string") this.resume = msg.resume;
      this.socket.startPing();
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
    this.socket.discard(1000);
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

  /** The socket closed (or looked dead, 1006): false ends the session, anything else reconnects. */
  lostConnection(code) {
    this.joined = false;
    if (NO_RECONNECT_CLOSE_CODES.has(code)) {
      this.stop();
      this.handlers.onEnded(code);
      return false;
    }
    if (!this.everJoined && this.socket.attempt >= INITIAL_ATTEMPTS) {
      this.stop();
      this.handlers.onRejected("connection", "");
      return false;
    }
    return true;
  }

  /** Send a message on the joined session; adds an `id` and returns it (null if not connected). */
  send(msg) {
    if (!this.joined) return null;
    const id = msg.id ?? this.nextId++;
    return this.socket.send({ ...msg, id }) ? id : null;
  }

  /** Leave for good: tell the server, then close (the server closes with 1000 itself). */
  leave() {
    const wasJoined = this.joined;
    const open = this.socket.open;
    this.stop();
    this.resume = null;
    if (wasJoined && open) {
      this.socket.send({ type: "leave", id: this.nextId++ });
      setTimeout(() => this.socket.discard(1000), 2000);
    } else {
      this.socket.discard(1000);
    }
  }

  stop() {
    this.socket.stop();
  }
}
