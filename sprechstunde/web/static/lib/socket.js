// The one reconnecting JSON WebSocket of the call (/ws), the waiting room (/ws/queue) and the advisor
// console (/ws/console), docs/protocol.md. What each socket says is up to its page; this keeps it alive:
// - reconnects after a lost connection with exponential backoff and jitter (at most 5 s), and at once when
//   the browser reports being `online` again;
// - pings every 20 s once started and drops a socket whose pong is 15 s overdue (a dead network seldom
//   closes a socket by itself), which then counts as lost with code 1006;
// - consumes the server's `pong` frames; frames that are not JSON objects are ignored.

export const PING_INTERVAL_MS = 20000;
export const PONG_TIMEOUT_MS = 15000;
const FIRST_DELAY_MS = 500;
const MAX_DELAY_MS = 5000;

/** How long to wait before reconnect number `attempt` + 1: half the exponential step plus a random half,
 * so that the clients of a restarted server do not all come back in the same instant. */
export function backoffDelay(attempt, random = Math.random) {
  const step = Math.min(FIRST_DELAY_MS * 2 ** attempt, MAX_DELAY_MS);
  return Math.round(step / 2 + (random() * step) / 2);
}

/** A server frame as an object, or null for anything that is not a JSON object (ignored). */
export function parseMessage(data) {
  try {
    const msg = JSON.parse(data);
    return msg && typeof msg === "object" ? msg : null;
  } catch {
    return null;
  }
}

/** ws: or wss: (as the page) to `path` on the page's own host. */
export function socketUrl(path, loc = window.location) {
  return `${loc.protocol === "https:" ? "wss:" : "ws:"}//${loc.host}${path}`;
}

/**
 * url: a string, or a function giving the URL of each new connection.
 * hooks (all optional):
 *   open()                       the socket is open: say hello, startPing() when the session may ping;
 *   message(msg)                 every JSON object frame but `pong`;
 *   close(code) → false to stop  the connection was lost (not after stop()); anything else reconnects;
 *   reconnecting(attempt, ms)    reconnect number `attempt` follows in `ms`.
 * ping: the ping frame to send (default {type: "ping"}).
 */
export class ReconnectingSocket {
  constructor({ url, hooks = {}, ping = () => ({ type: "ping" }) }) {
    this.url = url;
    this.hooks = hooks;
    this.ping = ping;
    this.ws = null;
    this.stopped = false;
    this.attempt = 0;
    this.reconnectTimer = null;
    this.pingTimer = null;
    this.pingSentAt = null;
    this.onlineListener = () => {
      if (this.reconnectTimer === null) return;
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = null;
      this.connect();
    };
    window.addEventListener("online", this.onlineListener);
  }

  get open() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  /** Open a new connection now (the first one, or again after discard()). */
  connect() {
    if (this.stopped) return;
    this.reconnectTimer = null;
    let ws;
    try {
      ws = new WebSocket(typeof this.url === "function" ? this.url() : this.url);
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      if (ws === this.ws && this.hooks.open) this.hooks.open();
    };
    ws.onmessage = (event) => {
      if (ws !== this.ws) return;
      const msg = parseMessage(event.data);
      if (!msg) return;
      if (msg.type === "pong") {
        this.pingSentAt = null;
        return;
      }
      if (this.hooks.message) this.hooks.message(msg);
    };
    ws.onclose = (event) => {
      if (ws !== this.ws) return;
      this.ws = null;
      this.lost(event.code);
    };
    // onerror is always followed by onclose
  }

  /** Send `msg` as JSON on the open socket; false when there is none. */
  send(msg) {
    if (!this.open) return false;
    this.ws.send(JSON.stringify(msg));
    return true;
  }

  /** The server accepted the session: the next loss starts the backoff from the beginning. */
  resetBackoff() {
    this.attempt = 0;
  }

  startPing() {
    this.stopPing();
    this.pingTimer = setInterval(() => {
      if (this.pingSentAt !== null && performance.now() - this.pingSentAt > PONG_TIMEOUT_MS) {
        this.drop();
        return;
      }
      if (this.pingSentAt === null) this.pingSentAt = performance.now();
      this.send(this.ping());
    }, PING_INTERVAL_MS);
  }

  stopPing() {
    if (this.pingTimer !== null) clearInterval(this.pingTimer);
    this.pingTimer = null;
    this.pingSentAt = null;
  }

  /** Let go of the current socket without its close reaching the hooks (closed with `code`). */
  discard(code = 1000) {
    this.stopPing();
    const ws = this.ws;
    this.ws = null;
    if (ws && (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING)) {
      try {
        ws.close(code);
      } catch {
        // already closing
      }
    }
  }

  /** No reconnecting any more; an open socket stays open (to say goodbye on it) unless closed too. */
  stop() {
    this.stopped = true;
    this.stopPing();
    if (this.reconnectTimer !== null) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    window.removeEventListener("online", this.onlineListener);
  }

  /** Stop, and close the socket with `code`. */
  close(code = 1000) {
    this.stop();
    this.discard(code);
  }

  /** The socket looks dead (no pong): drop it without waiting for a close handshake, then reconnect. */
  drop() {
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      try {
        ws.close();
      } catch {
        // already closing
      }
    }
    this.lost(1006);
  }

  lost(code) {
    this.stopPing();
    if (this.stopped) return;
    if (this.hooks.close && this.hooks.close(code) === false) {
      this.stop();
      return;
    }
    this.scheduleReconnect();
  }

  scheduleReconnect() {
    if (this.stopped || this.reconnectTimer !== null) return;
    const delay = backoffDelay(this.attempt);
    this.attempt += 1;
    if (this.hooks.reconnecting) this.hooks.reconnecting(this.attempt, delay);
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }
}
