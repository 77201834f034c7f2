// The citizen's end screen (issue 17; templates/_endscreen.html, web/consultations/ending.py):
// - the advisor closed the consultation ("consultation-ended", or a reloaded page with data-end-token): what
//   happened, the ticket reference, the documents shared in the call until they are deleted, what next,
//   and the one-question survey (1–5, optional comment, anonymous, once per consultation);
// - the advisor left and nobody came back within ADVISOR_GRACE_MS: the consultation was interrupted;
// - a hand-over: where the citizen goes and why their place is kept, before the waiting room reloads.

import { $, el, show } from "./lib/dom.js";
import { ApiError, fetchJson } from "./lib/fetch.js";
import { dateText, pageLang } from "./lib/intl.js";
import { tr } from "./strings.js";

const root = $("call-app");
const lang = pageLang(root);
const OFFICE_ZONE = "Europe/Berlin"; // offices.toml's default zone: the day documents are kept until
const MAX_COMMENT = 1000; // rooms/feedback.py MAX_COMMENT
// How long a citizen waits in a call the advisor left (a reload or a dropped connection comes back well
// within it) before the page says the consultation was interrupted (docs/protocol.md, "consultation-ended").
export const ADVISOR_GRACE_MS = 3 * 60 * 1000;

let endToken = "";

/** Show the end screen section alone, with `heading`; everything the call or the waiting room showed goes. */
function takeOver(heading) {
  for (const id of ["prejoin", "incall", "left", "wait-gone"]) {
    if ($(id)) $(id).hidden = true;
  }
  root.dataset.state = "ended";
  $("ended").hidden = false;
  $("ended-heading").textContent = heading;
  $("ended-documents").hidden = true;
  $("ended-survey").hidden = true;
  $("ended-ticket").hidden = true;
  $("ended-next").hidden = false;
  show($("ended-text"), "");
  $("ended-status").textContent = "";
  bookingLink(root.dataset.office ? `/termin/${encodeURIComponent(root.dataset.office)}` : "/termin");
  queueLink(root.dataset.office || "");
  window.scrollTo(0, 0);
  $("ended-heading").focus({ preventScroll: true });
}

/** "Neu anstellen": the start page with the office chosen (home.js reads ?office=). */
function queueLink(office) {
  const query = new URLSearchParams({ lang });
  if (office) query.set("office", office);
  $("ended-queue").href = `/?${query}`;
}

function bookingLink(path) {
  const url = new URL(path, window.location.href);
  url.searchParams.set("lang", lang);
  $("ended-booking").href = url.pathname + url.search;
}

function requestEndToken(roomId, joinToken) {
  return fetchJson(`/api/rooms/${encodeURIComponent(roomId)}/ending`, {
    method: "POST",
    headers: { "X-Join-Token": joinToken },
  }).then((answer) => answer.token);
}

/** The end token if the consultation was closed while the citizen's page was disconnected, else "". */
export async function endedMeanwhile(roomId, joinToken) {
  try {
    return await requestEndToken(roomId, joinToken);
  } catch {
    return ""; // 404 not_ended: still running
  }
}

/**
 * The advisor closed the consultation. `endToken` when the page already has it (a reload); otherwise the
 * citizen's join token fetches it (POST /api/rooms/{roomId}/ending; guests have no end screen of their own).
 */
export async function showEnding({ endToken: known = "", roomId = "", joinToken = "" } = {}) {
  takeOver(tr("call.end.heading"));
  $("ended-status").textContent = tr("call.end.loading");
  try {
    endToken = known;
    if (!endToken) endToken = await requestEndToken(roomId, joinToken);
    const ending = await fetchJson(`/api/endings/${encodeURIComponent(endToken)}?lang=${encodeURIComponent(lang)}`);
    render(ending);
  } catch {
    $("ended-status").textContent = tr("call.end.load_failed");
  }
}

function render(ending) {
  const office = ending.office && ending.office.name ? ending.office.name : "";
  $("ended-status").textContent = "";
  const outcome = ["resolved", "ticket", "no_show"].includes(ending.outcome) ? ending.outcome : "resolved";
  show($("ended-text"), tr(`call.end.${outcome}`, { office }));
  if (typeof ending.ticket === "string" && ending.ticket) {
    $("ended-ticket-ref").textContent = ending.ticket;
    $("ended-ticket").hidden = false;
  }
  if (typeof ending.booking_url === "string") bookingLink(ending.booking_url);
  if (ending.office && typeof ending.office.id === "string") queueLink(ending.office.id);
  renderDocuments(Array.isArray(ending.documents) ? ending.documents : [], ending.kept_until);
  renderSurvey(!!ending.survey_answered);
}

function renderDocuments(documents, keptUntil) {
  const list = $("ended-documents-list");
  list.replaceChildren();
  for (const item of documents) {
    if (!item || typeof item.url !== "string") continue;
    const isFile = item.type === "file";
    const label = isFile ? item.name : item.title || item.host || item.url;
    const link = el("a", { href: item.url, textContent: label || item.url });
    if (isFile) link.setAttribute("download", "");
    else Object.assign(link, { target: "_blank", rel: "noopener noreferrer" });
    list.append(el("li", { className: `document ${isFile ? "file" : "link"}` }, link));
  }
  if (!list.children.length) return;
  const until = dateText(new Date(keptUntil), lang, {
    day: "numeric",
    month: "long",
    year: "numeric",
    timeZone: OFFICE_ZONE,
  });
  show($("ended-kept"), until ? tr("call.end.documents.kept", { date: until }) : "");
  $("ended-documents").hidden = false;
}

function renderSurvey(answered) {
  $("ended-survey").hidden = false;
  if (answered) {
    thank(tr("call.survey.answered"));
    return;
  }
  $("survey-form").hidden = false;
  $("survey-thanks").hidden = true;
}

/** The answer replaces the form; when the form had the focus, the answer takes it (not the page's top). */
function thank(text) {
  const hadFocus = $("survey-form").contains(document.activeElement);
  $("survey-form").hidden = true;
  show($("survey-thanks"), text);
  if (hadFocus) $("survey-thanks").focus();
}

let sending = false;

async function sendSurvey(event) {
  event.preventDefault();
  if (sending) return;
  const chosen = $("survey-form").querySelector('input[name="score"]:checked');
  const comment = $("survey-comment").value.trim();
  show($("survey-error"), "");
  if (!chosen) {
    show($("survey-error"), tr("call.survey.choose"));
    $("survey-score-1").focus();
    return;
  }
  if (comment.length > MAX_COMMENT) {
    show($("survey-error"), tr("call.survey.too_long", { max: MAX_COMMENT }));
    return;
  }
  // busy, not disabled: a disabled button would lose the keyboard focus (an error keeps it here)
  sending = true;
  $("survey-send").setAttribute("aria-disabled", "true");
  try {
    await fetchJson("/api/feedback", {
      method: "POST",
      body: { token: endToken, score: Number(chosen.value), comment: comment || null },
    });
    thank(tr("call.survey.thanks"));
  } catch (error) {
    if (error instanceof ApiError && error.code === "answered") thank(tr("call.survey.answered"));
    else if (error instanceof ApiError && error.code === "comment_too_long") {
      show($("survey-error"), tr("call.survey.too_long", { max: MAX_COMMENT }));
    } else show($("survey-error"), tr("call.survey.failed"));
  } finally {
    sending = false;
    $("survey-send").removeAttribute("aria-disabled");
  }
}

/** The advisor left and did not come back: the consultation is over for the citizen, without a result. */
export function showInterrupted() {
  takeOver(tr("call.end.interrupted.heading"));
  show($("ended-text"), tr("call.end.interrupted.text"));
}

/**
 * The advisor handed the citizen to another office: say where and why their place is kept; the waiting page
 * then reloads into the new office's line (waiting.js).
 */
export function showHandover(office) {
  takeOver(tr("call.end.handover.heading"));
  $("ended-next").hidden = true;
  show($("ended-text"), `${tr("call.end.handover.text", { office })} ${tr("call.end.handover.place")}`);
  $("ended-status").textContent = tr("call.end.handover.moving");
}

/**
 * Watches whether a staff member is still in the call (call.js feeds it the participants). When the last
 * advisor leaves, a notice says so and offers to end; after ADVISOR_GRACE_MS `onGone` ends the call.
 */
export class AdvisorWatch {
  constructor({ onGone, graceMs = ADVISOR_GRACE_MS }) {
    this.onGone = onGone;
    this.graceMs = graceMs;
    this.timer = null;
    this.notice = null;
  }

  /** After every participant change: `advisors` is how many advisors are in the call now. */
  update(advisors) {
    if (advisors > 0) {
      this.clear();
      return;
    }
    if (this.timer !== null) return;
    this.timer = window.setTimeout(() => this.gone(), this.graceMs);
    if (!this.notice) {
      const button = el("button", { type: "button", className: "button", textContent: tr("call.end.advisor_left.leave") });
      button.addEventListener("click", () => this.gone());
      this.notice = el("div", { id: "advisor-gone", className: "notice warning advisor-gone", role: "alert" },
        el("p", { textContent: tr("call.end.advisor_left", { minutes: Math.round(this.graceMs / 60000) }) }),
        el("p", {}, button));
      $("status").after(this.notice);
    }
    this.notice.hidden = false;
  }

  clear() {
    if (this.timer !== null) window.clearTimeout(this.timer);
    this.timer = null;
    if (this.notice) this.notice.hidden = true;
  }

  gone() {
    this.clear();
    this.onGone();
  }
}

/** Light the chosen star and those before it (a row of stars reads as "4 of 5"). */
function lightStars() {
  const chosen = $("survey-form").querySelector('input[name="score"]:checked');
  const score = chosen ? Number(chosen.value) : 0;
  if (chosen) show($("survey-error"), ""); // "please choose" is answered
  for (const star of $("survey-form").querySelectorAll(".star")) {
    star.classList.toggle("lit", Number(star.dataset.score) <= score);
  }
}

function init() {
  if (!$("ended")) return;
  $("survey-form").addEventListener("submit", sendSurvey);
  $("survey-form").addEventListener("change", lightStars);
}

init();
