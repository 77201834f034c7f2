// The signaling WebSocket (docs/protocol.md): hello/welcome, keep-alive pings and reconnection with backoff.

import { ReconnectingSocket, socketUrl } from "./lib/socket.js";

const NO_RECONNECT_CLOSE_CODES = new Set([1000, 4001, 4002]);
const INITIAL_ATTEMPTS = 4; // before the first welcome: give up after this many failed connections
// `wrong_node` redirects followed within one attempt (a chain: the room moved meanwhile); past that, the
// attempt counts as failed and the next one follows after the backoff — never a reason to give up.
const MAX_REDIRECTS = 3;

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
    this.redirect = null; // {url, node}: where the room runs, for the next connection only
    this.redirects = 0; // followed in the current attempt
    this.target = null; // the node the current connection was sent to (null: the proxy chose)
    // The node a redirect led to that did not take this client: reported in `hello` (`unreachable`) until
    // a welcome, so that the server checks it at once instead of sending the client there again.
    this.unreachable = null;
    this.socket = new ReconnectingSocket({
      url: () => {
        // A redirect (`wrong_node`) is used for one connection; afterwards the proxy chooses again.
        const redirect = this.redirect;
        this.redirect = null;
        if (!redirect) this.redirects = 0; // a new attempt (after a loss or the backoff): a new budget
        this.target = redirect ? redirect.node : null;
        return redirect ? redirect.url : this.url;
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
    const hello = { type: "hello", id: this.helloId, v: 1, token: this.token, name: this.name,
      resume: this.resume };
    if (this.unreachable) hello.unreachable = this.unreachable;
    this.socket.send(hello);
  }

  dispatch(msg) {
    if (msg.type === "welcome") {
      const reconnected = this.everJoined;
      this.joined = true;
      this.everJoined = true;
      this.socket.resetBackoff();
      this.redirects = 0;
      this.unreachable = null;
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
    if (msg.code === "wrong_node" && typeof msg.node === "string") {
      if (msg.node === this.target) {
        // Sent to that node, this connection reached another one (the proxy or the relay could not
        // reach it): it did not take us. Say so in the next hello, after the backoff.
        this.unreachable = msg.node;
        this.retryLater();
        return;
      }
      if (this.redirects >= MAX_REDIRECTS) {
        this.retryLater();
        return;
      }
      // The consultation runs on another server process: the reverse proxy routes ?node= to it
      // (same origin, so the page's connect-src 'self' still holds). A node named although it was
      // reported unreachable was checked by the server just now: it is there.
      this.redirects += 1;
      const target = new URL(this.url);
      target.searchParams.set("node", msg.node);
      this.redirect = { url: target.href, node: msg.node };
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
    const wasJoined = this.joined;
    this.joined = false;
    if (NO_RECONNECT_CLOSE_CODES.has(code)) {
      this.stop();
      this.handlers.onEnded(code);
      return false;
    }
    // a redirect's node that never welcomed us (killed, or the proxy found nothing there): not again
    // before the server has checked it
    if (!wasJoined && this.target) this.unreachable = this.target;
    if (!this.everJoined && this.socket.attempt >= INITIAL_ATTEMPTS) {
      this.stop();
      this.handlers.onRejected("connection", "");
      return false;
    }
    return true;
  }

  /** This attempt did not get in, but the server answered: the next one after the backoff. Before the
   * first welcome only INITIAL_ATTEMPTS of them; once in the call, for as long as it takes. */
  retryLater() {
    this.joined = false;
    if (!this.everJoined && this.socket.attempt >= INITIAL_ATTEMPTS) {
      this.stop();
      this.handlers.onRejected("connection", "");
      return;
    }
    this.socket.scheduleReconnect();
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
