// The advisor console's live queue (/ws/console, docs/protocol.md): who is waiting, "Nächste Person",
// "Aufrufen"; on `claimed` the advisor goes to the call. Everything from citizens is text, never HTML.

import { WaitingAlerts } from "./alerts.js";
import { directCallUrl } from "./direct.js";
import { $, el, show } from "./lib/dom.js";
import { officeLabels, zonedTime } from "./format.js";
import { languageName, pageLang } from "./lib/intl.js";
import { ReconnectingSocket, socketUrl } from "./lib/socket.js";
import { loadStrings, tr } from "./strings.js";

loadStrings($("page-strings"));
const offices = officeLabels($("office-labels")); // names in the page language and time zones

const root = $("queue-app");
const lang = pageLang(root);
const list = $("queue-list");
const FATAL_CLOSE = new Set([4401, 4403]);

let everConnected = false;
let stopped = false;
let nextId = 1;
let busy = false;
let entries = [];
let receivedAt = performance.now();
const openTranscripts = new Set(); // entry ids whose transcript the advisor unfolded
// someone new is waiting: tone, count in the tab title, desktop notification (alerts.js)
const alerts = new WaitingAlerts({
  soundButton: $("alert-sound"),
  permissionButton: $("alert-permission"),
  state: $("alert-state"),
});

window.sprechstundeConsole = {
  get entries() {
    return entries;
  },
};

function waitedText(entry) {
  const seconds = (entry.waited_seconds || 0) + (performance.now() - receivedAt) / 1000;
  return seconds < 60 ? tr("console.queue.seconds") : tr("console.queue.minutes", { minutes: Math.floor(seconds / 60) });
}

/** An instant (appointments come in UTC) on the clock of the entry's office, not the browser's. */
function localTime(iso, office) {
  return zonedTime(iso, lang, offices[office] && offices[office].time_zone) || "–";
}

/** The office's name in the page language; the server's name or the id for an office the page lacks. */
function officeName(entry) {
  return (offices[entry.office] && offices[entry.office].name) || entry.office_name || entry.office || "–";
}

function fact(label, value, className) {
  const wrap = el("div", { className: className ? `queue-fact ${className}` : "queue-fact" });
  wrap.append(el("dt", {}, label), el("dd", {}, value));
  return wrap;
}

function renderEntry(entry, index) {
  const item = el("li", { className: "queue-entry" });
  item.dataset.entryId = entry.entry_id;
  const headingId = `queue-entry-${index}`;
  const head = el("div", { className: "queue-entry-head" });
  const topic = el("h2", { className: "queue-topic" }, entry.topic || "–");
  topic.id = headingId;
  const claim = el("button", { className: "button" }, tr("console.queue.claim"));
  claim.type = "button";
  claim.dataset.entryId = entry.entry_id;
  claim.setAttribute("aria-label", tr("console.queue.claim_label", { topic: entry.topic || "–" }));
  claim.disabled = busy;
  claim.addEventListener("click", () => request({ type: "claim", entry_id: entry.entry_id }));
  head.append(topic, claim);
  item.append(head);
  item.setAttribute("aria-labelledby", headingId);

  const facts = el("dl", { className: "queue-facts" });
  facts.append(fact(tr("console.queue.language"), languageName(entry.language)));
  facts.append(fact(tr("console.queue.office"), officeName(entry)));
  facts.append(fact(tr("console.queue.waited"), waitedText(entry), "queue-waited"));
  const appointment = entry.appointment && entry.appointment.starts_at
    ? tr("console.queue.appointment", { time: localTime(entry.appointment.starts_at, entry.office) })
    : tr("console.queue.walk_in");
  item.append(facts);
  item.append(el("p", { className: entry.appointment ? "queue-badge is-appointment" : "queue-badge" }, appointment));
  if (entry.appointment) item.classList.add("has-appointment");
  if (entry.channel === "phone") {
    // a caller held on the telephone line (sprechstunde/phone): taken like everybody else, audio only
    item.classList.add("is-phone");
    item.append(el("p", { className: "queue-badge is-phone" }, `☎ ${tr("console.phone.mark")}`));
  }

  if (entry.note) {
    const note = el("p", { className: "queue-note" });
    note.append(el("strong", {}, `${tr("console.queue.note")}: `), document.createTextNode(entry.note));
    item.append(note);
  }
  if (entry.handover_note) {
    // from the colleague who handed the citizen over: for staff only, never shown to the citizen
    const handover = el("p", { className: "queue-note queue-handover" });
    handover.append(el("strong", {}, `${tr("console.queue.handover_note")}: `),
      document.createTextNode(entry.handover_note));
    item.append(handover);
  }
  if (Array.isArray(entry.transferred_from) && entry.transferred_from.length) {
    const from = entry.transferred_from.map((office) => officeName({ office })).join(", ");
    item.append(el("p", { className: "hint" }, tr("console.queue.transferred", { offices: from })));
  }
  const transcript = Array.isArray(entry.transcript) ? entry.transcript : [];
  if (transcript.length) {
    const details = el("details", { className: "queue-transcript" });
    details.open = openTranscripts.has(entry.entry_id);
    details.addEventListener("toggle", () => {
      if (details.open) openTranscripts.add(entry.entry_id);
      else openTranscripts.delete(entry.entry_id);
    });
    details.append(el("summary", {}, tr("console.queue.transcript", { count: transcript.length })));
    const log = el("ol", { className: "transcript-log" });
    for (const message of transcript) {
      const role = message && message.role === "bot" ? "bot" : "citizen";
      const line = el("li", { className: `transcript-${role}` });
      line.append(el("span", { className: "transcript-role" }, `${tr(`console.queue.role.${role}`)}: `));
      line.append(document.createTextNode(message && typeof message.text === "string" ? message.text : ""));
      log.append(line);
    }
    details.append(log);
    item.append(details);
  }
  return item;
}

function render() {
  // Every update redraws the list: the keyboard focus inside it (a claim button, a transcript's summary)
  // goes back to the same control of the same entry; when that entry went (another advisor took it), to
  // the entry now in its place, else to the list's heading — never to the top of the page.
  const active = document.activeElement;
  const inList = !!active && list.contains(active);
  const entry = inList ? active.closest(".queue-entry") : null;
  const kind = inList && active.matches("summary") ? "summary" : "button";
  const index = entry ? [...list.children].indexOf(entry) : -1;
  list.replaceChildren(...entries.map(renderEntry));
  if (inList) {
    const same = entry && list.querySelector(`.queue-entry[data-entry-id="${CSS.escape(entry.dataset.entryId)}"] ${kind}`);
    const nearby = index >= 0 && list.children.length ? list.children[Math.min(index, list.children.length - 1)] : null;
    const instead = nearby ? nearby.querySelector("button:not(:disabled)") : null;
    (same || instead || $("queue-heading")).focus();
  }
  $("queue-empty").hidden = entries.length > 0;
  $("queue-count").textContent = tr("console.queue.count", { count: entries.length });
  $("queue-next").disabled = busy || entries.length === 0;
}

function tick() {
  const nodes = list.querySelectorAll(".queue-entry");
  nodes.forEach((node, index) => {
    const entry = entries[index];
    const value = node.querySelector(".queue-waited dd");
    if (entry && value) value.textContent = waitedText(entry);
  });
}

function setBusy(value) {
  busy = value;
  root.setAttribute("aria-busy", String(value));
  $("queue-next").disabled = busy || entries.length === 0;
  for (const button of list.querySelectorAll("button[data-entry-id]")) button.disabled = busy;
}

// ---------------------------------------------------------------- the socket

function request(msg) {
  if (busy) return;
  show($("queue-error"), "");
  if (!socket.open) {
    show($("queue-error"), tr("console.queue.reconnecting"));
    return;
  }
  setBusy(true);
  socket.send({ ...msg, id: `r-${nextId++}` });
}

function handle(msg) {
  switch (msg.type) {
    case "queue": {
      socket.resetBackoff();
      everConnected = true;
      show($("queue-connection"), "");
      const before = entries.length;
      entries = Array.isArray(msg.entries) ? msg.entries.filter((e) => e && typeof e.entry_id === "string") : [];
      receivedAt = performance.now();
      if (Number.isInteger(msg.advisors_online)) {
        $("queue-advisors").textContent = tr("console.queue.advisors", { count: msg.advisors_online });
      }
      render();
      alerts.update(entries);
      if (entries.length !== before) $("queue-live").textContent = tr("console.queue.count", { count: entries.length });
      break;
    }
    case "claimed": {
      stopped = true;
      const topic = msg.entry && msg.entry.topic ? msg.entry.topic : "";
      show($("queue-connection"), tr("console.queue.claimed", { topic }));
      // straight into the call: the citizen is already waiting in the room (direct.js)
      if (typeof msg.advisor_url === "string") window.location.assign(directCallUrl(msg.advisor_url));
      break;
    }
    case "error": {
      setBusy(false);
      const key = `console.error.${msg.code}`;
      show($("queue-error"), tr(key) !== key ? tr(key) : tr("console.error.other", { message: msg.message || msg.code || "?" }));
      if (msg.code === "not_authenticated" || msg.code === "forbidden_origin") stopped = true;
      else $("queue-error").focus();
      break;
    }
    default:
      break; // unknown
  }
}

const socket = new ReconnectingSocket({
  url: socketUrl(`/ws/console?lang=${encodeURIComponent(lang)}`),
  hooks: {
    open: () => socket.startPing(),
    message: handle,
    close: (code) => {
      setBusy(false);
      if (FATAL_CLOSE.has(code)) stopped = true;
      return !stopped;
    },
    reconnecting: () => {
      show($("queue-connection"), tr(everConnected ? "console.queue.reconnecting" : "console.queue.connecting"));
    },
  },
});

$("queue-next").addEventListener("click", () => request({ type: "next" }));
setInterval(tick, 10000);
render();
socket.connect();
