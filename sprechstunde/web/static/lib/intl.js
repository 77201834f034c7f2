// Language names and dates from the browser's Intl data, in the page language.

/** The page language: the app root's data-lang, else <html lang>, else German. */
export function pageLang(node) {
  return (node && node.dataset && node.dataset.lang) || document.documentElement.lang || "de";
}

// Native names for languages the browser has no locale data for: Chromium ships none for Kurdish and would
// fall back to the name in the browser's own language ("Kurdisch").
const NATIVE_NAMES = { ku: "Kurdî" };
const nativeNames = new Map();

/**
 * A language's name in that language itself, capitalised as a list entry ("Türkçe", "Français"): never
 * translated, a Turkish speaker looks for "Türkçe". The code itself for a language nobody knows.
 */
export function languageName(code) {
  if (typeof code !== "string" || !code) return code;
  if (!nativeNames.has(code)) nativeNames.set(code, nativeName(code));
  return nativeNames.get(code);
}

function nativeName(code) {
  if (Object.prototype.hasOwnProperty.call(NATIVE_NAMES, code)) return NATIVE_NAMES[code];
  try {
    if (!Intl.DisplayNames.supportedLocalesOf([code]).length) return code;
    const name = new Intl.DisplayNames([code], { type: "language", fallback: "code" }).of(code);
    return name ? name.charAt(0).toLocaleUpperCase(code) + name.slice(1) : code;
  } catch {
    return code; // not a well-formed language tag
  }
}

const formats = new Map();

/** `when` (a Date) as Intl.DateTimeFormat(lang, options) writes it; "" for an invalid date. */
export function dateText(when, lang, options) {
  if (!(when instanceof Date) || Number.isNaN(when.getTime())) return "";
  const key = `${lang}|${JSON.stringify(options)}`;
  if (!formats.has(key)) formats.set(key, new Intl.DateTimeFormat(lang, options));
  return formats.get(key).format(when);
}

/**
 * Items as the language writes a list: "Deutsch, Türkçe und Polski" (type "disjunction": "… oder …"),
 * Arabic with its own comma and "و".
 * A language the browser has no list data for (Kurdish in Chromium) gets the items separated by commas,
 * not the browser's own language's "and".
 */
export function listText(items, lang, type = "conjunction") {
  const list = items.filter((item) => typeof item === "string" && item);
  try {
    if (Intl.ListFormat.supportedLocalesOf([lang]).length) {
      return new Intl.ListFormat(lang, { style: "long", type }).format(list);
    }
  } catch {
    // not a well-formed language tag: plain commas below
  }
  return list.join(", ");
}
