// UI strings of the call page, rendered by the server into <script type="application/json" id="call-strings">.

let strings = {};

export function loadStrings(element) {
  try {
    strings = JSON.parse(element ? element.textContent : "{}") || {};
  } catch {
    strings = {};
  }
}

/** The string for `key` with {placeholders} filled in; the key itself if it is missing. */
export function tr(key, values = {}) {
  const text = Object.prototype.hasOwnProperty.call(strings, key) ? strings[key] : key;
  return text.replace(/\{(\w+)\}/g, (whole, name) =>
    Object.prototype.hasOwnProperty.call(values, name) ? String(values[name]) : whole,
  );
}
