// UI strings of the call page, rendered by the server into <script type="application/json" id="call-strings">.

let strings = {};
let plurals = null;

export function loadStrings(element) {
  try {
    strings = JSON.parse(element ? element.textContent : "{}") || {};
  } catch {
    strings = {};
  }
  plurals = null;
}

const has = (key) => Object.prototype.hasOwnProperty.call(strings, key);

/**
 * A language whose nouns change with the number beyond one/other (Arabic: 3–10 "دقائق", 11+ "دقيقة") adds
 * "<key>#<CLDR plural category>" variants (tests/test_catalog.py checks them); the number deciding is the
 * first placeholder of the text.
 */
function variant(key, values) {
  const text = strings[key];
  const first = /\{(\w+)\}/.exec(text);
  const number = first ? Number(values[first[1]]) : NaN;
  if (!Number.isFinite(number)) return key;
  if (plurals === null) plurals = new Intl.PluralRules(document.documentElement.lang || "de");
  const specific = `${key}#${plurals.select(number)}`;
  return has(specific) ? specific : key;
}

/** The string for `key` with {placeholders} filled in; the key itself if it is missing. */
export function tr(key, values = {}) {
  const text = has(key) ? strings[variant(key, values)] : key;
  return text.replace(/\{(\w+)\}/g, (whole, name) =>
    Object.prototype.hasOwnProperty.call(values, name) ? String(values[name]) : whole,
  );
}
