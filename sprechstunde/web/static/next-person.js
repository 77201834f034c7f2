// "Nächste Person" on the advisor's call page once the consultation is closed (issue 17, item 9). The
// advisor should not have to go back to the console and click twice more: this opens the console's own
// socket (/ws/console, docs/protocol.md), shows how many wait, claims the next citizen with the same
// `next` the console sends, leaves the finished call and goes straight into the new one (direct.js).

import { directCallUrl } from "./direct.js";
import { $, show } from "./lib/dom.js";
import { ReconnectingSocket, socketUrl } from "./lib/socket.js";
import { tr } from "./strings.js";

const FATAL_CLOSE = new Set([4401, 4403]);

export class NextPerson {
  /** box: shown once started; button: "Nächste Person"; state: the live line (count, nobody, errors). */
  constructor({ box, button, state, lang }) {
    this.box = box;
    this.button = button;
    this.state = state;
    this.lang = lang;
    this.socket = null;
    this.count = 0;
    this.busy = false;
    this.stopped = false;
    this.focusPending = false;
    button.addEventListener("click", () => this.claim());
  }

  /** Show the box and start listening to the queue (once); with `focus`, move the focus there as soon as
   * the queue is known: onto the button when someone waits, else onto the line that says nobody does. */
  start({ focus = false } = {}) {
    this.box.hidden = false;
    this.focusPending = focus;
    if (this.socket) return;
    show(this.state, tr("consult.next.connecting"));
    this.socket = new ReconnectingSocket({
      url: socketUrl(`/ws/console?lang=${encodeURIComponent(this.lang)}`),
      hooks: {
        open: () => this.socket.startPing(),
        message: (msg) => this.handle(msg),
        close: (code) => {
          this.setBusy(false);
          if (FATAL_CLOSE.has(code)) this.stopped = true;
          return !this.stopped;
        },
      },
    });
    this.socket.connect();
  }

  setBusy(busy) {
    this.busy = busy;
    this.button.disabled = busy || this.count === 0;
  }

  claim() {
    if (this.busy || !this.socket || !this.socket.open) return;
    this.setBusy(true);
    this.socket.send({ type: "next", id: "next-1" });
  }

  handle(msg) {
    switch (msg.type) {
      case "queue": {
        this.socket.resetBackoff();
        this.count = Array.isArray(msg.entries) ? msg.entries.length : 0;
        show(this.state, this.count ? tr("consult.next.waiting", { count: this.count }) : tr("consult.next.nobody"));
        this.setBusy(this.busy);
        if (this.focusPending) {
          this.focusPending = false;
          (this.count ? this.button : this.state).focus();
        }
        break;
      }
      case "claimed": {
        this.stopped = true;
        this.socket.stop();
        const topic = msg.entry && msg.entry.topic ? msg.entry.topic : "";
        show(this.state, tr("consult.next.claimed", { topic }));
        if (typeof msg.advisor_url !== "string") break;
        // leave the finished call properly (the citizen sees the advisor go), then into the next one
        const call = $("call-app");
        if (call) call.dispatchEvent(new CustomEvent("call:leave"));
        window.location.assign(directCallUrl(msg.advisor_url));
        break;
      }
      case "error": {
        this.setBusy(false);
        if (msg.code === "queue_empty") show(this.state, tr("consult.next.nobody"));
        else show(this.state, tr("consult.next.error", { message: msg.message || msg.code || "?" }));
        if (msg.code === "not_authenticated" || msg.code === "forbidden_origin") this.stopped = true;
        break;
      }
      default:
        break;
    }
  }
}
