// The call's chat with the consultation's history (issue 17, item 6): whoever joins later (an
// interpreter, a colleague) or reconnects gets the chat so far in `welcome` (`chat_history`,
// docs/protocol.md). Every message carries the server's `message_id`, so a message that arrives both
// live and in the history (a reconnect, or a message sent while the page joined) is shown once, in the
// order it was written. Text is only ever set as text (ui.js ChatLog).

import { displayName } from "./ui.js";

export class CallChat {
  /** `log`: the page's ChatLog, which renders into `list` (the <ol>). */
  constructor(log, list) {
    this.log = log;
    this.list = list;
    this.shown = new Map(); // message_id → its <li>
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
