// DOM helpers shared by every page script. Text from other people goes in as text (textContent or a text
// node via append), never as HTML: there is deliberately no innerHTML helper here.

/** The element with this id, or null. */
export const $ = (id) => document.getElementById(id);

/**
 * A new element: `props` are assigned as DOM properties (className, textContent, type, hidden, htmlFor,
 * role …; `dataset` is merged), children are appended (strings become text nodes; null, undefined and false
 * are skipped, so optional parts can be written inline).
 */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  const { dataset, ...rest } = props || {};
  Object.assign(node, rest);
  if (dataset) Object.assign(node.dataset, dataset);
  for (const child of children) {
    if (child !== null && child !== undefined && child !== false) node.append(child);
  }
  return node;
}

/** Show `text` in `node`, or hide the node when there is none (status and error lines). */
export function show(node, text) {
  node.textContent = text || "";
  node.hidden = !text;
}

/** The parsed JSON of a <script type="application/json" id=…> block; {} when missing or broken. */
export function readJson(id) {
  try {
    return JSON.parse($(id).textContent) || {};
  } catch {
    return {};
  }
}

/**
 * Where to navigate for a URL the server sent (waiting room, call): its own origin only — the server may
 * write another host name into its public URL, the page stays on the one it was loaded from.
 */
export function ownUrl(href) {
  const url = new URL(href, window.location.href);
  return url.origin === window.location.origin ? url.href : url.pathname;
}
