// The chat widget on the start page: POST /api/chatbot/messages, offers to talk to a person
// (video now → POST /api/chatbot/escalate → the waiting room, an appointment link, a written question),
// under each answer when it was last checked and which office is responsible, and a button to download the
// conversation (POST /api/chatbot/download, saved through a blob URL: no URL holding the conversation id
// — the capability — ever reaches the browser's history or download list, where the next user of a shared
// computer would find it).
// Server text is only ever inserted as text nodes; URLs become anchors built with DOM APIs.

import { $, ownUrl } from "./lib/dom.js";
import { fetchFile, fetchJson } from "./lib/fetch.js";
import { dateText, languageName, pageLang } from "./lib/intl.js";

const root = $("chat");

let strings = {};
try {
  strings = JSON.parse($("chat-strings").textContent) || {};
} catch {
  strings = {};
}

function tr(key, values = {}) {
  const text = Object.prototype.hasOwnProperty.call(strings, key) ? strings[key] : key;
  return text.replace(/\{(\w+)\}/g, (whole, name) =>
    Object.prototype.hasOwnProperty.call(values, name) ? String(values[name]) : whole,
  );
}

const uiLang = pageLang(root);
// The conversation lasts as long as the page shows it: a reload starts afresh, so the bot never
// follows up on messages the citizen no longer sees. (The server keeps it for the advisor and the
// download until --chat-retention-days after the last message.)
let conversationId = null;
let sending = false;

/** A refusal as the chat shows it: the server's `error` and the HTTP status in `refused`. Without any
 * answer (offline) the failure is thrown on. */
function answered(failure) {
  if (!failure.status) throw failure;
  return { error: failure.error, refused: failure.status };
}

function remember(id) {
  conversationId = id;
  if ($("chat-download") && typeof id === "string") $("chat-download-row").hidden = false;
}

/** The citizen's copy of the conversation: fetched with the id in the body and saved from a blob URL,
 * revoked right after. On any failure the chat goes on as before and the status line says so. */
async function download(trigger) {
  if (!conversationId) return;
  trigger.disabled = true;
  try {
    const { blob, filename } = await fetchFile("/api/chatbot/download", {
      method: "POST",
      body: { conversation_id: conversationId },
      cache: "no-store",
    });
    const url = URL.createObjectURL(blob);
    const a = document.createElement("a");
    a.href = url;
    a.download = filename || "chatbot.txt";
    a.hidden = true;
    document.body.append(a);
    a.click();
    a.remove();
    // the download has started from the click; the URL is needed no longer
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  } catch {
    $("chat-status").textContent = tr("chat.download.failed");
  } finally {
    trigger.disabled = false;
  }
}

const URL_PATTERN = /https?:\/\/[^\s<>"'„“”]+[^\s<>"'„“”.,;:!?)]/g;

/** A safe anchor for an http(s) URL, or null. */
function anchor(url, label) {
  let parsed;
  try {
    parsed = new URL(url, window.location.href);
  } catch {
    return null;
  }
  if (parsed.protocol !== "https:" && parsed.protocol !== "http:") return null;
  const a = document.createElement("a");
  a.href = parsed.href;
  a.textContent = label || url;
  if (parsed.origin !== window.location.origin) {
    a.target = "_blank";
    a.rel = "noopener noreferrer";
  }
  return a;
}

/** Paragraphs of `text` with its URLs as anchors — text nodes only, never markup. */
function richText(text) {
  const fragment = document.createDocumentFragment();
  for (const block of String(text).split(/\n{2,}/)) {
    const p = document.createElement("p");
    p.dir = "auto"; // a German paragraph in an Arabic answer reads left to right
    const lines = block.split("\n");
    lines.forEach((line, index) => {
      let last = 0;
      for (const match of line.matchAll(URL_PATTERN)) {
        p.append(document.createTextNode(line.slice(last, match.index)));
        p.append(anchor(match[0]) || document.createTextNode(match[0]));
        last = match.index + match[0].length;
      }
      p.append(document.createTextNode(line.slice(last)));
      if (index < lines.length - 1) p.append(document.createElement("br"));
    });
    fragment.append(p);
  }
  return fragment;
}

function message(role, content, lang) {
  const item = document.createElement("div");
  item.className = `chat-message chat-${role}`;
  if (lang) item.lang = lang;
  if (lang === "ar") item.dir = "rtl";
  const who = document.createElement("span");
  who.className = "chat-who";
  who.textContent = role === "citizen" ? tr("chat.you") : tr("chat.bot");
  who.lang = uiLang;
  who.dir = "auto";
  item.append(who);
  const body = document.createElement("div");
  body.className = "chat-text";
  if (typeof content === "string") body.append(richText(content));
  else body.append(content);
  item.append(body);
  $("chat-log").append(item);
  item.scrollIntoView({ block: "nearest" });
  return item;
}

function button(label, onClick, className = "button") {
  const b = document.createElement("button");
  b.type = "button";
  b.className = className;
  b.textContent = label;
  b.addEventListener("click", onClick);
  return b;
}

function whenText(iso) {
  try {
    return dateText(new Date(iso), uiLang, { weekday: "long", hour: "2-digit", minute: "2-digit" }) || iso;
  } catch {
    return iso;
  }
}

/** Under an answer: when it was last checked (the server wrote the date in the page language) and which
 * office is responsible (named in the citizen's language). */
function provenance(body) {
  const meta = document.createElement("p");
  meta.className = "chat-meta";
  meta.lang = uiLang;
  meta.dir = "auto";
  if (body.checked && typeof body.checked.text === "string") {
    const when = document.createElement("span");
    when.textContent = tr("chat.meta.checked", { date: body.checked.text });
    meta.append(when);
  }
  if (body.office && typeof body.office.name === "string") {
    const office = document.createElement("span");
    office.textContent = tr("chat.meta.office", { office: body.office.name });
    meta.append(office);
  }
  return meta.childElementCount ? meta : null;
}

function suggestionsBox(suggestions) {
  const box = document.createElement("div");
  box.className = "chat-suggestions";
  for (const s of suggestions) {
    if (s && typeof s.title === "string") box.append(button(s.title, () => send(s.title), "chat-chip"));
  }
  return box;
}

async function escalate(offer, language, status) {
  status.textContent = tr("chat.video.joining");
  try {
    const body = await fetchJson("/api/chatbot/escalate", {
      method: "POST",
      body: { conversation_id: conversationId, offer: "video", language },
    }).catch(answered);
    if (body && typeof body.waiting_url === "string") {
      window.location.assign(ownUrl(body.waiting_url));
      return;
    }
    const error = body && body.error;
    if (error && error.code === "closed") {
      status.textContent = error.next_opening
        ? tr("chat.video.opens", { office: offer.office_name || offer.office, when: whenText(error.next_opening) })
        : tr("chat.video.closed", { office: offer.office_name || offer.office });
    } else {
      status.textContent = (error && error.message) || tr("chat.error");
    }
  } catch {
    status.textContent = tr("chat.error");
  }
}

function questionForm(offer, lastQuestion) {
  const form = document.createElement("form");
  form.className = "chat-question form";
  form.noValidate = true;
  const id = `chat-q-${Date.now()}`;
  const label = document.createElement("label");
  label.htmlFor = `${id}-text`;
  label.textContent = tr("chat.question.text");
  const text = document.createElement("textarea");
  text.id = `${id}-text`;
  text.rows = 3;
  text.maxLength = 2000;
  text.required = true;
  text.value = lastQuestion || "";
  const contactLabel = document.createElement("label");
  contactLabel.htmlFor = `${id}-contact`;
  contactLabel.textContent = tr("chat.question.contact");
  const contact = document.createElement("input");
  contact.id = `${id}-contact`;
  contact.type = "text";
  contact.maxLength = 200;
  contact.autocomplete = "email";
  contact.required = true;
  const status = document.createElement("p");
  status.className = "hint";
  status.setAttribute("role", "status");
  const submit = document.createElement("button");
  submit.type = "submit";
  submit.className = "button primary";
  submit.textContent = tr("chat.question.send");
  for (const [l, field] of [[label, text], [contactLabel, contact]]) {
    const wrap = document.createElement("div");
    wrap.className = "field";
    wrap.append(l, field);
    form.append(wrap);
  }
  form.append(submit, status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!text.value.trim() || !contact.value.trim()) {
      (text.value.trim() ? contact : text).focus();
      return;
    }
    submit.disabled = true;
    try {
      const body = await fetchJson("/api/questions", {
        method: "POST",
        body: {
          office: offer.office,
          language: offer.language || "de",
          topic: "Chatbot",
          question: text.value.trim(),
          contact: contact.value.trim(),
        },
      }).catch(answered);
      if (body && !body.refused && body.reference) {
        status.textContent = tr("chat.question.sent", { reference: body.reference });
        form.querySelectorAll("textarea, input, button").forEach((el) => (el.disabled = true));
        return;
      }
      status.textContent = (body && body.error && body.error.message) || tr("chat.error");
    } catch {
      status.textContent = tr("chat.error");
    }
    submit.disabled = false;
  });
  return form;
}

function offersBox(escalation, lastQuestion) {
  const box = document.createElement("div");
  box.className = "chat-offers";
  const heading = document.createElement("p");
  heading.textContent = tr("chat.offers");
  box.append(heading);
  const status = document.createElement("p");
  status.className = "hint";
  status.setAttribute("role", "status");
  for (const offer of escalation.offers || []) {
    const office = offer.office_name || offer.office || "";
    if (offer.type === "video") {
      // the office of the conversation's topic, and whether someone who speaks the citizen's language
      // is online for it now
      const who = document.createElement("p");
      who.className = "chat-offer-office";
      who.lang = uiLang;
      who.textContent = tr("chat.meta.office", { office });
      box.append(who);
      if (typeof offer.conversation_language === "string") {
        const speaks = document.createElement("p");
        speaks.className = "chat-offer-language";
        speaks.lang = uiLang;
        speaks.textContent = tr(offer.language_online ? "chat.video.language_online" : "chat.video.language_offline", {
          language: languageName(offer.conversation_language),
        });
        box.append(speaks);
      }
      if (offer.available) {
        box.append(button(tr("chat.video.now", { office }), () => escalate(offer, offer.language, status), "button primary"));
      } else if (offer.open_now) {
        const p = document.createElement("p");
        p.textContent = tr("chat.video.busy", { office });
        box.append(p, button(tr("chat.video.wait"), () => escalate(offer, offer.language, status)));
      } else {
        const p = document.createElement("p");
        p.textContent = offer.next_opening
          ? tr("chat.video.opens", { office, when: whenText(offer.next_opening) })
          : tr("chat.video.closed", { office });
        box.append(p);
      }
    } else if (offer.type === "appointment" && typeof offer.url === "string") {
      const a = anchor(offer.url, tr("chat.appointment"));
      if (a) {
        a.className = "button";
        box.append(a);
      }
    } else if (offer.type === "question") {
      const open = button(tr("chat.question"), () => {
        open.replaceWith(questionForm(offer, lastQuestion));
        box.querySelector("textarea").focus();
      });
      box.append(open);
    }
  }
  box.append(status);
  return box;
}

async function send(text) {
  text = String(text || "").trim();
  if (!text || sending) return;
  sending = true;
  $("chat-send").disabled = true;
  message("citizen", text);
  $("chat-status").textContent = tr("chat.thinking");
  const payload = { text };
  if (conversationId) payload.conversation_id = conversationId;
  try {
    let body = await postMessage(payload);
    if (body && body.refused === 400 && conversationId) {
      // an id from an old session the server no longer accepts: start afresh
      delete payload.conversation_id;
      body = await postMessage(payload);
    }
    if (body && !body.refused && typeof body.reply === "string") {
      remember(body.conversation_id);
      const content = document.createDocumentFragment();
      const reply = richText(body.reply);
      if (Array.isArray(body.german_parts) && body.german_parts.includes("answer")) {
        // all but the first paragraph (the notice, in the citizen's language) is the German answer
        [...reply.children].slice(1).forEach((p) => (p.lang = "de"));
      }
      content.append(reply);
      const meta = provenance(body);
      if (meta) content.append(meta);
      if (Array.isArray(body.suggestions) && body.suggestions.length) content.append(suggestionsBox(body.suggestions));
      const offers = body.escalation ? offersBox(body.escalation, text) : null;
      if (offers) content.append(offers);
      message("bot", content, body.language);
      // Asked for a person (or the bot could not help): the offers are what the citizen needs next, so
      // the log (and the page) scroll until its buttons show — on a phone they were below the log's edge.
      // An answer with an offer (parts only in German) is read from its start instead.
      if (offers && body.escalation.reason !== "german_only") offers.scrollIntoView({ block: "nearest" });
      $("chat-status").textContent = "";
    } else {
      const code = body && body.error && body.error.code;
      $("chat-status").textContent = code === "rate_limited" ? tr("chat.rate_limited") : tr("chat.error");
    }
  } catch {
    $("chat-status").textContent = tr("chat.error");
  }
  sending = false;
  $("chat-send").disabled = false;
}

function postMessage(payload) {
  return fetchJson("/api/chatbot/messages", { method: "POST", body: payload }).catch(answered);
}

if (root) {
  $("chat-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("chat-input");
    const text = input.value;
    if (!text.trim()) {
      input.focus();
      return;
    }
    input.value = "";
    send(text).then(() => input.focus());
  });
  for (const chip of root.querySelectorAll(".chat-suggestions .chat-chip")) {
    chip.addEventListener("click", () => send(chip.dataset.question));
  }
  $("chat-person").addEventListener("click", () => send(tr("chat.person.message")));
  const downloadButton = $("chat-download");
  if (downloadButton) downloadButton.addEventListener("click", () => download(downloadButton));
}
