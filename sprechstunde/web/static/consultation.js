// The advisor's consultation controls on the call page (web/templates/_consultation.html): close with an
// outcome, invite a guest (interpreter, colleague), transfer the citizen to another office's queue.
// JSON API with the session's CSRF token in X-CSRF-Token (web/consultation_api.py).

import { tr } from "./strings.js";

const $ = (id) => document.getElementById(id);
const panel = $("consultation");
const entryId = panel.dataset.entryId;
const csrf = panel.dataset.csrf;
let busy = false;

function show(node, text) {
  node.textContent = text || "";
  node.hidden = !text;
}

function errorText(status, body) {
  const error = body && body.error ? body.error : {};
  const key = `consult.error.${error.code || `http_${status}`}`;
  return tr(key) !== key ? tr(key) : tr("consult.error.other", { message: error.message || String(status) });
}

async function post(action, payload) {
  const response = await fetch(`/api/consultations/${encodeURIComponent(entryId)}/${action}`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRF-Token": csrf },
    body: JSON.stringify(payload || {}),
    credentials: "same-origin",
  });
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) throw new Error(errorText(response.status, body));
  return body;
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
