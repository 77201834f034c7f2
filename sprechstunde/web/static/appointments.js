// The advisor's appointments page: lists today's and upcoming appointments of their offices (their own
// marked), marks a begun one as no-show, and moves one to a free slot. JSON API: /api/staff/appointments.

import { $, el } from "./lib/dom.js";
import { fetchJson } from "./lib/fetch.js";
import { officeLabels, zonedTime } from "./format.js";
import { dateText, languageName, pageLang } from "./lib/intl.js";
import { loadStrings, tr } from "./strings.js";

loadStrings($("page-strings"));
const root = $("appointments-app");
const csrf = root.dataset.csrf;
const lang = pageLang(root);
const offices = officeLabels($("office-labels")); // the offices' names and time zones

/** "09:35" on the office's clock, wherever the browser is (the slice of the office's ISO if unknown). */
function officeTime(iso, office) {
  const zone = office && offices[office.id] ? offices[office.id].time_zone : null;
  return (zone && zonedTime(iso, lang, zone)) || local(iso).time;
}

function local(iso) {
  // The server sends the office's wall time with offset; show it as written there.
  return { date: iso.slice(0, 10), time: iso.slice(11, 16) };
}

function dayLabel(isoDate) {
  const [y, m, d] = isoDate.split("-").map(Number);
  return dateText(new Date(Date.UTC(y, m - 1, d)), lang === "en" ? "en-GB" : "de-DE", {
    weekday: "long", day: "numeric", month: "long", timeZone: "UTC",
  });
}

function showError(text) {
  $("appointments-error").textContent = text || "";
  $("appointments-error").hidden = !text;
  if (text) $("appointments-error").focus();
}

/** The staff appointments API; changes carry the CSRF token. Failures throw with the server's message. */
function call(method, url, body) {
  return fetchJson(url, { method, body, csrf: method !== "GET" ? csrf : undefined });
}

function rescheduleForm(appointment, item) {
  const form = el("form", { className: "form reschedule-form" });
  const id = appointment.booking_id;
  const dayInput = el("input", { type: "date", id: `day-${id}`, value: local(appointment.starts_at).date, required: true });
  const load = el("button", { type: "button", className: "button", textContent: tr("appointments.reschedule.load") });
  const select = el("select", { id: `slot-${id}`, hidden: true });
  const selectLabel = el("label", { htmlFor: `slot-${id}`, textContent: tr("appointments.reschedule.slot"), hidden: true });
  const submit = el("button", { type: "submit", className: "button primary", textContent: tr("appointments.reschedule.submit"), hidden: true });
  const cancel = el("button", { type: "button", className: "button", textContent: tr("appointments.reschedule.cancel") });
  const note = el("p", { className: "hint", role: "status" });
  load.addEventListener("click", async () => {
    note.textContent = "";
    try {
      const data = await call("GET", `/api/staff/appointments/${encodeURIComponent(id)}/slots?date=${dayInput.value}`);
      select.replaceChildren(...data.slots.map((s) => new Option(officeTime(s.starts_at, appointment.office), s.starts_at)));
      const any = data.slots.length > 0;
      select.hidden = selectLabel.hidden = submit.hidden = !any;
      note.textContent = any ? "" : tr("appointments.reschedule.none");
      if (any) select.focus();
    } catch (error) {
      note.textContent = tr("appointments.failed", { message: error.message });
    }
  });
  cancel.addEventListener("click", () => {
    form.remove();
    item.querySelector(".reschedule-open").focus();
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await call("POST", `/api/staff/appointments/${encodeURIComponent(id)}/reschedule`, { starts_at: select.value });
      $("appointments-status").textContent = tr("appointments.done");
      await refresh();
    } catch (error) {
      note.textContent = tr("appointments.failed", { message: error.message });
    }
  });
  form.append(
    el("label", { htmlFor: `day-${id}`, textContent: tr("appointments.reschedule.day") }), dayInput, load,
    selectLabel, select, note, submit, cancel,
  );
  return form;
}

function render(appointment, now) {
  const start = officeTime(appointment.starts_at, appointment.office);
  const end = officeTime(appointment.ends_at, appointment.office);
  const item = el("li", { className: `appointment${appointment.mine ? " mine" : ""}` });
  item.dataset.bookingId = appointment.booking_id;
  const who = appointment.mine ? tr("appointments.mine") : tr("appointments.colleague", { advisor: appointment.advisor });
  item.append(
    el("p", {}, el("strong", { textContent: `${start}–${end} ${appointment.name}` })),
    el("p", {
      className: "meta",
      textContent: [
        appointment.service.name,
        offices[appointment.office.id] ? offices[appointment.office.id].name : appointment.office.name,
        languageName(appointment.language),
        tr(`appointments.channel.${appointment.channel}`), appointment.reference, who,
        tr(`appointments.status.${appointment.status}`), appointment.waiting ? tr("appointments.waiting") : "",
      ].filter(Boolean).join(" · "),
    }),
  );
  const contact = [appointment.email, appointment.phone].filter(Boolean).join(", ");
  if (contact) item.append(el("p", { className: "meta", textContent: `${tr("appointments.contact")}: ${contact}` }));
  if (appointment.status === "booked") {
    const actions = el("div", { className: "actions" });
    if (new Date(appointment.starts_at) <= now) {
      const noShow = el("button", { type: "button", className: "button", textContent: tr("appointments.no_show") });
      noShow.addEventListener("click", async () => {
        try {
          await call("POST", `/api/staff/appointments/${encodeURIComponent(appointment.booking_id)}/no-show`);
          $("appointments-status").textContent = tr("appointments.done");
          await refresh();
        } catch (error) {
          showError(tr("appointments.failed", { message: error.message }));
        }
      });
      actions.append(noShow);
    } else {
      const move = el("button", { type: "button", className: "button reschedule-open", textContent: tr("appointments.reschedule") });
      move.addEventListener("click", () => {
        if (!item.querySelector(".reschedule-form")) item.append(rescheduleForm(appointment, item));
        item.querySelector(".reschedule-form input").focus();
      });
      actions.append(move);
    }
    item.append(actions);
  }
  return item;
}

async function refresh() {
  showError("");
  try {
    const data = await call("GET", "/api/staff/appointments?days=14");
    const now = new Date(data.now);
    const today = data.from;
    const todays = data.appointments.filter((a) => local(a.starts_at).date === today && a.status !== "cancelled");
    const later = data.appointments.filter((a) => local(a.starts_at).date !== today && a.status !== "cancelled");
    $("appointments-today").replaceChildren(...todays.map((a) => render(a, now)));
    const groups = [];
    let lastDay = null;
    for (const a of later) {
      const day = local(a.starts_at).date;
      if (day !== lastDay) {
        groups.push(el("li", {}, el("h3", { textContent: dayLabel(day) })));
        lastDay = day;
      }
      groups.push(render(a, now));
    }
    $("appointments-later").replaceChildren(...groups);
    $("appointments-status").textContent = data.appointments.length ? "" : tr("appointments.empty");
  } catch (error) {
    $("appointments-status").textContent = "";
    showError(tr("appointments.failed", { message: error.message }));
  }
}

refresh();
setInterval(refresh, 60000);
