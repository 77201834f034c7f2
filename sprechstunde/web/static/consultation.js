// The advisor's consultation controls on the call page (web/templates/_consultation.html): close with an
// outcome, invite a guest (interpreter, colleague), transfer the citizen to another office's queue.
// JSON API with the session's CSRF token in X-CSRF-Token (web/consultations/api.py).

import { $, show } from "./lib/dom.js";
import { fetchJson } from "./lib/fetch.js";
import { NextPerson } from "./next-person.js";
import { tr } from "./strings.js";

const panel = $("consultation");
const entryId = panel.dataset.entryId;
const csrf = panel.dataset.csrf;
let busy = false;
const nextPerson = new NextPerson({
  box: $("consultation-next"),
  button: $("next-person"),
  state: $("next-state"),
  lang: document.documentElement.lang || "de",
});

function errorText(status, body) {
  const error = body && body.error ? body.error : {};
  const key = `consult.error.${error.code || `http_${status}`}`;
  return tr(key) !== key ? tr(key) : tr("consult.error.other", { message: error.message || String(status) });
}

async function post(action, payload) {
  try {
    return await fetchJson(`/api/consultations/${encodeURIComponent(entryId)}/${action}`, {
      method: "POST",
      body: payload || {},
      csrf,
      credentials: "same-origin",
    });
  } catch (failure) {
    // a refusal in the page's words; without an answer at all the browser's own message stays
    if (failure.status) throw new Error(errorText(failure.status, failure.body));
    throw failure;
  }
}

async function run(button, work) {
  if (busy) return;
  busy = true;
  button.disabled = true;
  panel.setAttribute("aria-busy", "true");
  show($("consultation-error"), "");
  try {
    await work();
  } catch (error) {
    show($("consultation-error"), error instanceof Error && error.message ? error.message : tr("consult.error.network"));
    $("consultation-error").focus();
  } finally {
    busy = false;
    button.disabled = false;
    panel.removeAttribute("aria-busy");
  }
}

function closed(text) {
  for (const form of [$("outcome-form"), $("transfer-form")]) {
    for (const field of form.elements) field.disabled = true;
  }
  $("guest-create").disabled = true;
  panel.dataset.closed = "true";
  show($("consultation-status"), text);
  // the next citizen is one click away, right here (next-person.js)
  nextPerson.start({ focus: true });
}

$("outcome-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  const outcome = form.elements.outcome.value;
  const notes = $("outcome-notes").value.trim();
  run($("outcome-submit"), async () => {
    const result = await post("finish", { outcome, notes });
    const text = result.ticket
      ? tr("consult.finished.ticket", { reference: result.ticket.reference })
      : tr(`consult.finished.${result.outcome}`);
    closed(text);
  });
});

// the hand-over form is folded away to keep the panel short; opened, it scrolls into the panel's view
$("transfer").addEventListener("toggle", (event) => {
  if (event.currentTarget.open) $("transfer-form").scrollIntoView({ block: "nearest" });
});

$("guest-create").addEventListener("click", () => {
  run($("guest-create"), async () => {
    const result = await post("guest");
    $("guest-url").value = result.guest_url;
    $("guest-result").hidden = false;
    $("guest-url").focus();
    $("guest-url").select();
    show($("consultation-status"), tr("consult.guest.created"));
  });
});

$("transfer-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const office = $("transfer-office").value;
  const note = $("transfer-note").value.trim();
  if (!note) {
    show($("consultation-error"), tr("consult.transfer.note_required"));
    $("transfer-note").focus();
    return;
  }
  const name = $("transfer-office").selectedOptions[0] ? $("transfer-office").selectedOptions[0].textContent : office;
  run($("transfer-submit"), async () => {
    await post("transfer", { office, note });
    closed(tr("consult.transferred", { office: name }));
  });
});
