// The waiting room: keeps the citizen's place over /ws/queue (docs/protocol.md), shows position, estimate,
// who is online and the office hours, sends the note, and moves into the call on this same page when an
// advisor admits the citizen (call.js startCall, with the camera and microphone opened here).

import { startCall, stopMedia } from "./call.js";
import { showHandover } from "./endscreen.js";
import { timeText, whenText } from "./format.js";
import { $, ownUrl, readJson, show } from "./lib/dom.js";
import { fetchJson } from "./lib/fetch.js";
import { languageName, listText, pageLang } from "./lib/intl.js";
import { ReconnectingSocket, socketUrl } from "./lib/socket.js";
import { tr } from "./strings.js";

const root = $("call-app");
const lang = pageLang(root);
const waitingToken = root.dataset.waitingToken || "";
const NAME_KEY = "sprechstunde.name";
const FATAL = new Set(["invalid_token", "expired", "unknown_entry"]);
const HANDOVER_PAUSE_MS = 5000; // time to read the hand-over text before the new waiting room

const entry = readJson("wait-entry");
let socket = null;
let finished = false; // admitted, removed or left: no reconnect
let everConnected = false;
let nextId = 1;
let pendingNote = null;
let lastAnnounced = "";
let switching = false;
let lastStatus = null;

// For tests and support: the last queue-status pushed by the server.
window.sprechstundeWaiting = {
  get status() {
    return lastStatus;
  },
};

// ---------------------------------------------------------------- rendering

// The figures follow the order advisors will claim in (rooms/estimate.py): `advisor_free` — an idle
// advisor takes this citizen at once; no number when nobody (online or in a consultation) can serve.
function estimateText(seconds, nobody = false) {
  if (typeof seconds !== "number" || !Number.isFinite(seconds)) {
    return tr(nobody ? "wait.estimate.nobody" : "wait.estimate.none");
  }
  if (seconds < 60) return tr("wait.estimate.soon");
  const minutes = Math.round(seconds / 60);
  return minutes <= 1 ? tr("wait.estimate.one") : tr("wait.estimate.minutes", { minutes });
}

function aheadText(position, now = false) {
  if (!Number.isInteger(position) || position < 1) return "";
  if (position === 1) return tr(now ? "wait.position.now" : "wait.position.next");
  if (position === 2) return tr("wait.position.one_ahead");
  return tr("wait.position.n", { ahead: position - 1 });
}

function render(status) {
  lastStatus = status;
  const position = Number.isInteger(status.position) ? status.position : null;
  $("wait-position").textContent = position !== null ? String(position) : tr("wait.position.unknown");
  const now = status.advisor_free === true;
  $("wait-ahead").textContent = aheadText(position, now);
  const online = Number.isInteger(status.advisors_online) ? status.advisors_online : null;
  const busy = Number.isInteger(status.advisors_busy) && status.advisors_busy > 0; // in a consultation
  const nobodyAtAll = online === 0 && !busy && !(status.languages_online || []).length;
  const estimate = now ? tr("wait.estimate.now") : estimateText(status.estimated_wait_seconds, nobodyAtAll);
  $("wait-estimate").textContent = estimate;
  $("wait-advisors").textContent = online !== null ? tr("wait.advisors.count", { count: online }) : "–";

  // Nobody online at all, or nobody who speaks this language: say so and offer the ways out.
  const languages = Array.isArray(status.languages_online) ? status.languages_online : [];
  // advisors_online counts those who can serve this entry; languages_online what the office serves now.
  const noLanguage = status.language_available === false && languages.length > 0 && !busy;
  const nobody = !noLanguage && online === 0;
  $("wait-nobody").hidden = !nobody;
  // nobody at a console, but someone who can serve is in a consultation: say that, not "nobody"
  if (nobody) $("wait-nobody").textContent = tr(busy ? "wait.all_busy" : "wait.nobody_online");
  $("wait-language").hidden = !noLanguage;
  if (noLanguage) {
    $("wait-language-online").textContent = languages.length
      ? tr("wait.language.online", { languages: listText(languages.map(languageName), lang, "disjunction") })
      : "";
    $("wait-german").hidden = !(entry.language && entry.language !== "de" && languages.includes("de") && entry.topic);
  }

  const office = status.office || {};
  if (office.name) $("wait-office").textContent = office.name;
  if (office.open_now === false) {
    show($("wait-closed"), tr("wait.closed", { when: whenText(office.next_opening, lang) || "–" }));
  } else {
    show($("wait-closed"), "");
  }
  show($("wait-closes-at"), office.open_now !== false && office.closes_at
    ? tr("wait.closes_at", { time: timeText(office.closes_at, lang) }) : "");

  if (pendingNote !== null && status.note === pendingNote) {
    pendingNote = null;
    $("note-feedback").textContent = tr("wait.note.sent");
    noteBusy(false);
  }

  if (position !== null) {
    const announcement = position === 1
      ? (now ? tr("wait.announce.now") : tr("wait.announce.next", { estimate }))
      : tr("wait.announce", { position, estimate });
    if (announcement !== lastAnnounced) {
      lastAnnounced = announcement;
      $("wait-live").textContent = announcement;
    }
  }
}

function gone(text) {
  finished = true;
  closeSocket();
  stopMedia();
  $("prejoin").hidden = true;
  $("wait-gone").hidden = false;
  $("wait-gone-text").textContent = text;
  root.dataset.state = "gone";
  window.scrollTo(0, 0);
  $("wait-gone-heading").focus({ preventScroll: true });
}

function admitted(msg) {
  finished = true;
  closeSocket();
  root.dataset.admitted = "true";
  $("wait-connection").hidden = true;
  $("wait-leave").hidden = true;
  $("note-send").disabled = true;
  $("wait-german").hidden = true;
  // A fallback in case the in-page call cannot start: the same join link as a page of its own.
  if (typeof msg.join_url === "string") $("wait-join-link").href = ownUrl(msg.join_url);
  $("wait-admitted").hidden = false;
  const started = startCall({
    token: msg.join_token,
    roomId: msg.room_id,
    role: "citizen",
    name: $("name-input").value,
  });
  if (!started && typeof msg.join_url === "string") window.location.assign($("wait-join-link").href);
}

// ---------------------------------------------------------------- the socket

function send(msg) {
  return socket !== null && socket.send(msg);
}

function closeSocket() {
  if (socket !== null) socket.close(1000);
}

function connect() {
  socket = new ReconnectingSocket({
    url: socketUrl(`/ws/queue?lang=${encodeURIComponent(lang)}`),
    hooks: {
      open: () => {
        socket.send({ type: "wait", id: nextId++, token: waitingToken });
        socket.startPing();
      },
      message: handle,
      close: () => !finished,
      reconnecting: (attempt) => {
        show($("wait-connection"), tr(everConnected ? "wait.reconnecting"
          : attempt > 3 ? "wait.error.connection" : "wait.connecting"));
      },
    },
  });
  socket.connect();
}

function handle(msg) {
  switch (msg.type) {
    case "queue-status":
      socket.resetBackoff();
      everConnected = true;
      show($("wait-connection"), "");
      if (msg.state && msg.state !== "waiting") break; // called: `admitted` follows at once
      render(msg);
      break;
    case "admitted":
      if (typeof msg.join_token === "string") admitted(msg);
      break;
    case "removed": {
      if (switching) break;
      const key = `wait.removed.${msg.reason}`;
      gone(tr(key) !== key ? tr(key) : tr("wait.removed.abandoned"));
      break;
    }
    case "error":
      onError(msg);
      break;
    default:
      break; // unknown
  }
}

function onError(msg) {
  const code = typeof msg.code === "string" ? msg.code : "";
  if (FATAL.has(code)) {
    gone(tr(`wait.error.${code}`));
    return;
  }
  if (typeof msg.id === "string" && msg.id.startsWith("n-")) {
    pendingNote = null;
    noteBusy(false);
    const key = `wait.note.${code === "note_too_long" ? "too_long" : code === "empty_note" ? "empty" : ""}`;
    $("note-feedback").textContent = code === "note_too_long" || code === "empty_note"
      ? tr(key) : tr("wait.error.other", { message: msg.message || code });
  }
}

// ---------------------------------------------------------------- the citizen's actions

/** "Notiz senden" while the note is on its way: marked busy, not disabled — a disabled button would drop
 * the keyboard focus to the top of the page (the focus stays on it, a second press does nothing). */
function noteBusy(busy) {
  if (busy) $("note-send").setAttribute("aria-disabled", "true");
  else $("note-send").removeAttribute("aria-disabled");
}

function sendNote(event) {
  event.preventDefault();
  if (pendingNote !== null) return;
  const text = $("note-input").value.trim();
  if (!text) {
    $("note-feedback").textContent = tr("wait.note.empty");
    $("note-input").focus();
    return;
  }
  if (text.length > 500) {
    $("note-feedback").textContent = tr("wait.note.too_long");
    return;
  }
  if (!send({ type: "note", id: `n-${nextId++}`, text })) {
    $("note-feedback").textContent = tr("wait.note.offline");
    return;
  }
  pendingNote = text;
  noteBusy(true);
  $("note-feedback").textContent = "";
}

function leave() {
  send({ type: "leave" });
  gone(tr("wait.removed.left"));
}

async function continueInGerman() {
  if (switching) return;
  switching = true;
  $("wait-german").disabled = true;
  $("wait-language-text").textContent = tr("wait.language.switching");
  const payload = { office: entry.office, language: "de", topic: entry.topic };
  if (entry.note) payload.note = entry.note;
  if (lastStatus && typeof lastStatus.note === "string" && lastStatus.note) payload.note = lastStatus.note;
  try {
    const body = await fetchJson("/api/queue", { method: "POST", body: payload });
    if (!body || typeof body.waiting_url !== "string") throw new Error("refused");
    send({ type: "leave" });
    finished = true;
    window.location.assign(ownUrl(body.waiting_url));
  } catch {
    switching = false;
    $("wait-german").disabled = false;
    $("wait-language-text").textContent = `${tr("wait.language.unavailable")} ${tr("wait.language.switch_failed")}`;
  }
}

function init() {
  if (root.dataset.endToken) return; // the consultation is over: call.js shows the end screen
  if (Array.isArray(entry.transferred_from) && entry.transferred_from.length) {
    show($("wait-handover"), tr("wait.handover", { office: $("wait-office").textContent }));
  }
  $("note-form").addEventListener("submit", sendNote);
  $("wait-leave").addEventListener("click", leave);
  // Transferred to another office during the call: say where to and why the place is kept, then back
  // into line there, at the old arrival time (the reloaded page says it again: #wait-handover).
  root.addEventListener("call:transferred", (event) => {
    event.preventDefault();
    showHandover(event.detail.office);
    window.setTimeout(() => window.location.reload(), HANDOVER_PAUSE_MS);
  });
  $("wait-german").addEventListener("click", continueInGerman);
  $("name-input").addEventListener("input", () => {
    try {
      sessionStorage.setItem(NAME_KEY, $("name-input").value.trim());
    } catch {
      // storage disabled
    }
  });
  if (!("WebSocket" in window)) {
    show($("wait-connection"), tr("call.unsupported"));
    return;
  }
  show($("wait-connection"), tr("wait.connecting"));
  connect();
}

init();
