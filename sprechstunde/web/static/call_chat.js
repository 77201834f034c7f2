// The call's chat with the consultation's history (issue 17, item 6): whoever joins later (an
// interpreter, a colleague) or reconnects gets the chat so far in `welcome` (`chat_history`,
// docs/protocol.md). Every message carries the server's `message_id`, so a message that arrives both
// live and in the history (a reconnect, or a message sent while the page joined) is shown once, in the
// order it was written. Text is only ever set as text (ui.js ChatLog).
//
// The page's own message is shown at once, marked "wird gesendet …" until the server acknowledges it
// (its own copy, which comes once the message is stored): a message whose acknowledgement never came
// (the connection or the server lost meanwhile) is sent again after the next `welcome` with the same
// `client_message_id`, and the server keeps and shows it once (docs/protocol.md `chat`).

import { tr } from "./strings.js";
import { displayName } from "./ui.js";

/** A random id for one message of this page (`client_message_id`: 8–64 of A–Z a–z 0–9 _ -). */
export function newClientId() {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return "k" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export class CallChat {
  /** `log`: the page's ChatLog, which renders into `list` (the <ol>). */
  constructor(log, list) {
    this.log = log;
    this.list = list;
    this.shown = new Map(); // message_id → its <li>
    this.outbox = new Map(); // client_message_id → { text, item }: own messages not acknowledged yet
  }

  /** Show the page's own message `text` at once, marked as not yet kept; returns its client id. */
  pending(text, name) {
    const clientId = newClientId();
    this.log.append({ name, text, own: true, sentAt: null });
    const item = this.list.lastElementChild;
    item.classList.add("pending");
    const mark = document.createElement("span");
    mark.className = "chat-pending";
    mark.textContent = tr("call.chat.sending");
    item.querySelector(".chat-meta").append(" ", mark);
    this.outbox.set(clientId, { text, item });
    return clientId;
  }

  /** Own messages not acknowledged yet, oldest first: [client id, text]. */
  unacknowledged() {
    return [...this.outbox].map(([clientId, { text }]) => [clientId, text]);
  }

  /**
   * The server's acknowledgement (the own copy of a `chat` with `client_message_id`): the message is
   * kept; its <li> loses the mark and takes the server's id (and the place of a copy the history brought
   * meanwhile). With `stored: false` (delivered, the store away) it stays in the outbox, without the
   * mark, to be offered again after the next welcome. Returns whether `msg` acknowledged a message of
   * this page.
   */
  acknowledge(msg) {
    const waiting = typeof msg.client_message_id === "string" && this.outbox.get(msg.client_message_id);
    if (!waiting) return false;
    if (msg.stored !== false) this.outbox.delete(msg.client_message_id);
    const { item } = waiting;
    item.classList.remove("pending");
    const mark = item.querySelector(".chat-pending");
    if (mark) mark.remove();
    const id = typeof msg.message_id === "string" && msg.message_id ? msg.message_id : null;
    if (id) {
      const copy = this.shown.get(id);
      if (copy && copy !== item) copy.replaceWith(item); // in the history's place, shown once, as own
      this.shown.set(id, item);
      item.dataset.messageId = id;
    }
    return true;
  }

  /** The server refused an own message (an `error` for its request): never sent again, removed. */
  refused(clientId) {
    const waiting = clientId && this.outbox.get(clientId);
    if (!waiting) return;
    this.outbox.delete(clientId);
    waiting.item.remove();
  }

  /**
   * Show one `chat` message (live or from the history) unless it is shown already; placed before
   * `before` (a node of the list), else at the end. Returns its node, or null when nothing was added.
   */
  show(msg, ownId, before = null) {
    if (!msg || typeof msg.text !== "string") return null;
    const id = typeof msg.message_id === "string" && msg.message_id ? msg.message_id : null;
    if (id && this.shown.has(id)) return null;
    this.log.append({
      name: typeof msg.name === "string" && msg.name ? msg.name : displayName({ role: msg.role }),
      text: msg.text,
      own: Boolean(ownId) && msg.from === ownId,
      sentAt: msg.sent_at,
    });
    const item = this.list.lastElementChild;
    if (id) {
      this.shown.set(id, item);
      item.dataset.messageId = id;
    }
    if (before && before !== item && before.parentNode === this.list) this.list.insertBefore(item, before);
    return item;
  }

  /**
   * The room's history (oldest first): messages already on screen keep their place, missing ones are
   * put in order among them; live messages newer than the history stay last.
   */
  restore(messages, ownId) {
    const history = (Array.isArray(messages) ? messages : []).filter(
      (m) => m && typeof m.text === "string" && typeof m.message_id === "string",
    );
    if (!history.length) return;
    const ids = new Set(history.map((m) => m.message_id));
    const onScreen = [...this.list.children].filter((node) => ids.has(node.dataset.messageId));
    // everything after the newest history message on screen is newer than the whole history
    let anchor = onScreen.length ? onScreen[onScreen.length - 1].nextElementSibling : this.list.firstElementChild;
    for (let i = history.length - 1; i >= 0; i -= 1) {
      const known = this.shown.get(history[i].message_id);
      anchor = known || this.show(history[i], ownId, anchor) || anchor;
    }
  }
}
