// The advisor's way from the console into a consultation without the pre-join click (issue 17, item 9).
//
// The console (and the "Nächste Person" button on the call page) sends the advisor to the join link the
// server answered with, marked by the fragment #direct. call.js skips the pre-join form for an advisor's
// link so marked: the citizen already waits in the room. A fragment never reaches the server, so the mark
// changes nothing about who may join; a citizen's or guest's link keeps its pre-join check whatever it says.

import { ownUrl } from "./lib/dom.js";

export const DIRECT_FRAGMENT = "#direct";

/** Where to go for the advisor link of a claimed consultation: the call itself, not its pre-join form. */
export function directCallUrl(advisorUrl) {
  const url = new URL(ownUrl(advisorUrl), window.location.href);
  url.hash = DIRECT_FRAGMENT;
  return url.href;
}

/** Whether this page was opened to enter the call at once (the advisor from the console). */
export function directJoinWanted(loc = window.location) {
  return loc.hash === DIRECT_FRAGMENT;
}
