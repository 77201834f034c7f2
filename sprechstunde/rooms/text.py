"""Free text from citizens and staff without the invisible characters that reorder what is displayed.

Unicode's explicit direction controls let a string show something other than what it holds: a right-to-left
override turns "Rechnung‮fdp.exe" into "Rechnungexe.pdf", an isolate hides where a name ends and the chat
text begins (issue 15, finding 13: chat, booking names, shared links, waiting-room notes, tickets, the
chatbot). Right-to-left text needs none of them — the Unicode bidirectional algorithm orders Arabic, Hebrew
or Kurdish (Sorani) letters by their own direction — so they are removed from free text, and text that must
be taken exactly as given (a URL, an e-mail address) is refused when it holds one.

Zero-width joiner and non-joiner (U+200D, U+200C) stay: Persian, Kurdish and emoji sequences need them and
they do not change the order of anything.
"""

from __future__ import annotations

# Embeddings and overrides (LRE, RLE, PDF, LRO, RLO), isolates (LRI, RLI, FSI, PDI) and the invisible marks
# (LRM, RLM, ALM), which can still move neutral characters such as "." or "@" to the other side.
BIDI_CONTROLS = frozenset(
    "\u202a\u202b\u202c\u202d\u202e"  # embeddings, pop, overrides
    "\u2066\u2067\u2068\u2069"  # isolates
    "\u200e\u200f\u061c"  # left-to-right, right-to-left and Arabic letter marks
)
_REMOVE = dict.fromkeys(map(ord, BIDI_CONTROLS))


def strip_bidi(text: str) -> str:
    """`text` without explicit direction controls; everything else, right-to-left letters included,
    unchanged. For free text (names, notes, messages, titles), where dropping them loses nothing."""
    return text.translate(_REMOVE)


def has_bidi(text: str) -> bool:
    """Whether `text` holds an explicit direction control. For values that must be taken exactly as
    given (URLs, addresses): refuse them instead of silently changing what the sender meant."""
    return not BIDI_CONTROLS.isdisjoint(text)
