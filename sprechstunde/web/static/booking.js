// Booking pages: progressive enhancement only — every step works without this script.
// - the join link's countdown ticks and the page reloads when the waiting room opens;
// - after a failed submit, focus moves to the error; after choosing a day or time, to that section;
// - the booking form's button is disabled after the first submit (the server is idempotent anyway).

import { $ } from "./lib/dom.js";

const countdown = $("countdown");
if (countdown) {
  const deadline = Date.now() + Number(countdown.dataset.seconds || "0") * 1000;
  const template = countdown.dataset.template || "{time}";
  const pad = (n) => String(n).padStart(2, "0");
  const tick = () => {
    const left = Math.max(0, Math.round((deadline - Date.now()) / 1000));
    const days = Math.floor(left / 86400);
    const h = Math.floor((left % 86400) / 3600);
    const m = Math.floor((left % 3600) / 60);
    const s = left % 60;
    const text = (days ? `${days} d ` : "") + `${pad(h)}:${pad(m)}:${pad(s)}`;
    countdown.textContent = template.replace("{time}", text);
    if (left === 0) {
      window.location.reload();
      return;
    }
    // Long waits tick once a minute, the last hour every second.
    setTimeout(tick, left > 3600 ? 60000 : 1000);
  };
  tick();
}

const error = $("booking-error");
if (error) {
  error.focus();
} else if (window.location.hash === "#details" || window.location.hash === "#slots") {
  const target = $(window.location.hash.slice(1));
  if (target) target.focus();
}

const form = document.querySelector("form.booking-form");
if (form) {
  form.addEventListener("submit", () => {
    const button = $("booking-submit");
    // after this event, so the click still submits
    if (button) setTimeout(() => button.setAttribute("disabled", ""), 0);
  });
}
