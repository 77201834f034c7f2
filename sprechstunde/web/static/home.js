// The start page: "Jetzt Videoberatung starten" → POST /api/queue (JSON) → the waiting room.

import { hoursText, timeText, whenText } from "./format.js";
import { $, ownUrl } from "./lib/dom.js";
import { fetchJson } from "./lib/fetch.js";
import { languageName, listText, pageLang } from "./lib/intl.js";
import { loadStrings, tr } from "./strings.js";

loadStrings($("page-strings"));

const form = $("start-form");
const lang = pageLang(form);
const ALL_LANGUAGES = ["de", "en", "fr", "it", "pl", "tr", "ku"];
let offices = [];
let sending = false;
let questionOffice = null; // the closed office a written question goes to

function office() {
  return offices.find((o) => o.id === $("start-office").value) || null;
}

function officeName(o) {
  return (o.names && (o.names[lang] || o.names.de)) || o.id;
}

function showError(text, { closed = false } = {}) {
  $("start-error-text").textContent = text || "";
  $("start-error-options").hidden = !closed;
  $("start-error").hidden = !text;
  if (text) $("start-error").focus();
}

function languagesOffered() {
  const chosen = office();
  if (chosen) return chosen.languages || ["de"];
  const all = new Set();
  for (const o of offices) for (const code of o.languages || []) all.add(code);
  return ALL_LANGUAGES.filter((code) => all.has(code)).concat([...all].filter((c) => !ALL_LANGUAGES.includes(c)));
}

function renderLanguages() {
  const select = $("start-language");
  // the language of the conversation follows the page's language until the citizen picks one
  if (!select.dataset.wired) {
    select.dataset.wired = "1";
    select.addEventListener("change", () => (select.dataset.picked = "1"));
  }
  const previous = select.dataset.picked ? select.value : ALL_LANGUAGES.includes(lang) ? lang : select.value || "de";
  const codes = languagesOffered();
  const options = (codes.length ? codes : ["de"]).map((code) => {
    const option = new Option(languageName(code), code);
    option.lang = code;
    return option;
  });
  select.replaceChildren(...options);
  select.value = codes.includes(previous) ? previous : codes.includes("de") ? "de" : codes[0] || "de";
}

function renderHours() {
  const chosen = office();
  const node = $("start-hours");
  if (!chosen) {
    node.textContent = "";
    return;
  }
  const parts = [];
  if (chosen.open_now && chosen.closes_at) parts.push(tr("home.start.open_until", { time: timeText(chosen.closes_at, lang) }));
  if (!chosen.open_now && chosen.next_opening) {
    parts.push(tr("home.start.closed_now", { when: whenText(chosen.next_opening, lang) }));
  }
  const hours = hoursText(chosen.hours);
  if (hours) parts.push(tr("home.start.hours", { hours }));
  node.textContent = parts.join(" ");
}

function renderOffices() {
  const select = $("start-office");
  const auto = select.options[0];
  const options = offices.map((o) => {
    const name = officeName(o);
    return new Option(o.open_now === false ? tr("home.start.office.closed", { name }) : name, o.id);
  });
  select.replaceChildren(auto, ...options);
  const wanted = new URLSearchParams(window.location.search).get("office");
  if (wanted && offices.some((o) => o.id === wanted)) select.value = wanted;
  renderLanguages();
  renderHours();
}

async function loadOffices() {
  try {
    const body = await fetchJson("/api/offices");
    offices = Array.isArray(body.offices) ? body.offices : [];
    renderOffices();
    $("start-status").textContent = "";
    $("start-submit").disabled = false;
  } catch {
    $("start-status").textContent = "";
    showError(tr("home.start.offices_failed"));
  }
}

function errorText(status, error) {
  const code = (error && error.code) || `http_${status}`;
  switch (code) {
    case "closed":
      return error.next_opening
        ? tr("home.error.closed", { when: whenText(error.next_opening, lang) })
        : tr("home.error.closed_unknown");
    case "unknown_language": {
      const list = Array.isArray(error.languages) ? listText(error.languages.map(languageName), lang, "disjunction") : "";
      return tr("home.error.unknown_language", { languages: list });
    }
    case "unknown_office":
    case "invalid_topic":
    case "note_too_long":
    case "rate_limited":
      return tr(`home.error.${code}`);
    case "empty_note":
      return tr("home.error.invalid_topic");
    default:
      return tr("home.error.other", { code });
  }
}

async function submit(event) {
  event.preventDefault();
  if (sending) return;
  showError("");
  const topic = $("start-topic").value.trim();
  $("start-topic-error").hidden = !!topic;
  if (!topic) {
    $("start-topic").setAttribute("aria-invalid", "true");
    $("start-topic").focus();
    return;
  }
  $("start-topic").removeAttribute("aria-invalid");
  const payload = { language: $("start-language").value, topic };
  if ($("start-office").value) payload.office = $("start-office").value;
  const note = $("start-note").value.trim();
  if (note) payload.note = note;

  sending = true;
  $("start-submit").disabled = true;
  form.setAttribute("aria-busy", "true");
  $("start-status").textContent = tr("home.start.sending");
  try {
    const body = await fetchJson("/api/queue", { method: "POST", body: payload });
    if (body && typeof body.waiting_url === "string") {
      // Same origin only: the waiting room is ours, whatever host name the server put into the URL.
      window.location.assign(ownUrl(body.waiting_url));
      return;
    }
    showError(errorText(201, null)); // accepted (201) without a waiting room: shown like any other refusal
  } catch (failure) {
    if (!failure.status) {
      showError(tr("home.error.network"));
    } else {
      const error = failure.error;
      showError(errorText(failure.status, error), { closed: !!error && error.code === "closed" });
      if (error && error.code === "closed" && typeof error.office === "string") offerQuestion(error.office);
    }
  }
  sending = false;
  $("start-submit").disabled = false;
  form.removeAttribute("aria-busy");
  $("start-status").textContent = "";
}

// ---------------------------------------------------------------- outside service hours: a question

function offerQuestion(officeId) {
  questionOffice = officeId;
  $("question").hidden = false;
  $("question-sent").hidden = true;
  $("question-form").hidden = false;
}

async function sendQuestion(event) {
  event.preventDefault();
  if (sending || !questionOffice) return;
  const payload = {
    office: questionOffice,
    language: $("start-language").value,
    topic: $("start-topic").value.trim(),
    question: $("question-text").value.trim(),
    contact: $("question-contact").value.trim(),
  };
  const error = $("question-error");
  error.hidden = true;
  sending = true;
  // busy, not disabled: a disabled button would drop the keyboard focus (`sending` stops a second send)
  $("question-submit").setAttribute("aria-disabled", "true");
  const refused = (code) => {
    const key = `home.question.error.${code}`;
    error.textContent = tr(key) !== key ? tr(key) : code === "invalid_topic"
      ? tr("home.start.topic.required") : tr("home.question.error.other", { code });
    error.hidden = false;
  };
  try {
    const body = await fetchJson("/api/questions", { method: "POST", body: payload });
    if (body && typeof body.reference === "string") {
      $("question-form").hidden = true;
      $("question-sent").textContent = tr("home.question.sent", { reference: body.reference });
      $("question-sent").hidden = false;
      $("question-sent").focus();
    } else {
      refused("http_201"); // accepted (201) without a reference
    }
  } catch (failure) {
    if (failure.status) {
      refused(failure.code);
    } else {
      error.textContent = tr("home.error.network");
      error.hidden = false;
    }
  }
  sending = false;
  $("question-submit").removeAttribute("aria-disabled");
}

// ---------------------------------------------------------------- "Beste Zeiten" from real waits

async function loadBestTimes() {
  const node = $("best-times");
  const chosen = $("start-office").value;
  try {
    // a refusal shows no best times; no answer at all hides them (below)
    const body = await fetchJson(`/api/best-times${chosen ? `?office=${encodeURIComponent(chosen)}` : ""}`)
      .catch((failure) => {
        if (failure.status) return null;
        throw failure;
      });
    const hours = body && Array.isArray(body.hours) ? body.hours : [];
    if (chosen !== $("start-office").value) return; // the choice changed meanwhile
    const pad = (hour) => String(hour).padStart(2, "0");
    const text = hours
      .filter((h) => Number.isInteger(h.hour))
      .map((h) => tr("home.best.hour", { from: pad(h.hour), to: pad((h.hour + 1) % 24) }))
      .join(", ");
    node.textContent = text ? `${tr("home.best.heading")}: ${tr("home.best.text", { hours: text })}` : "";
    node.hidden = !text;
  } catch {
    node.hidden = true;
  }
}

$("question-form").addEventListener("submit", sendQuestion);
$("start-office").addEventListener("change", () => {
  renderLanguages();
  renderHours();
  loadBestTimes();
});
$("start-topic").addEventListener("input", () => {
  if ($("start-topic").value.trim()) {
    $("start-topic-error").hidden = true;
    $("start-topic").removeAttribute("aria-invalid");
  }
});
form.addEventListener("submit", submit);
loadOffices().then(loadBestTimes);
