// Office hours and office times, shared by the start page and the waiting room (language names and the
// Intl formatting itself: lib/intl.js).

import { dateText } from "./lib/intl.js";
import { tr } from "./strings.js";

const DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/** "Mo–Do 08:00–17:00 · Fr 08:00–13:00" from [{day, intervals}], consecutive equal days grouped. */
export function hoursText(hours) {
  if (!Array.isArray(hours)) return "";
  const byDay = new Map(hours.map((h) => [h.day, Array.isArray(h.intervals) ? h.intervals.join(", ") : ""]));
  const groups = [];
  for (const day of DAYS) {
    const text = byDay.get(day) || "";
    const last = groups[groups.length - 1];
    if (last && last.text === text) last.to = day;
    else groups.push({ from: day, to: day, text });
  }
  return groups
    .filter((g) => g.text)
    .map((g) => {
      const days = g.from === g.to ? tr(`day.${g.from}`) : `${tr(`day.${g.from}`)}–${tr(`day.${g.to}`)}`;
      return `${days} ${g.text}`;
    })
    .join(" · ");
}

/**
 * The wall-clock time written in an ISO time stamp with offset ("2026-11-25T08:00:00+01:00" → 08:00): the
 * office's own time, which is what its opening hours are written in, whatever zone the browser is in.
 */
function officeClock(iso) {
  if (typeof iso !== "string" || !iso) return null;
  const when = Date.parse(iso);
  if (Number.isNaN(when)) return null;
  const match = /([+-])(\d{2}):?(\d{2})$/.exec(iso);
  const offset = match ? (match[1] === "-" ? -1 : 1) * (Number(match[2]) * 60 + Number(match[3])) : 0;
  return new Date(when + offset * 60000); // read back in UTC
}

/** "Mi., 25.11., 08:00" in the office's time; "" for null or garbage. */
export function whenText(iso, lang) {
  const when = officeClock(iso);
  if (!when) return "";
  return dateText(when, lang, {
    timeZone: "UTC",
    weekday: "short",
    day: "2-digit",
    month: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
  });
}

/** "17:00" in the office's time. */
export function timeText(iso, lang) {
  const when = officeClock(iso);
  if (!when) return "";
  return dateText(when, lang, { timeZone: "UTC", hour: "2-digit", minute: "2-digit" });
}

/**
 * Office labels a staff page carries as JSON ({id: {name, time_zone}}, web/core/staff_display.py): the
 * office's name in the page language and its IANA zone. {} when the element is missing or garbled.
 */
export function officeLabels(element) {
  try {
    const labels = JSON.parse(element ? element.textContent : "{}");
    return labels && typeof labels === "object" ? labels : {};
  } catch {
    return {};
  }
}

/**
 * "09:35": an instant (any ISO time stamp, "…Z" or with offset) on the wall clock of `timeZone` (an
 * office's IANA zone), whatever zone the browser runs in; 24-hour clock as on every staff page. The
 * browser's zone only when no zone is known; "" for garbage.
 */
export function zonedTime(iso, lang, timeZone) {
  const when = typeof iso === "string" ? new Date(iso) : null;
  const options = { hour: "2-digit", minute: "2-digit", hourCycle: "h23" };
  try {
    return dateText(when, lang, timeZone ? { ...options, timeZone } : options);
  } catch {
    return dateText(when, lang, options); // a zone this browser does not know
  }
}
