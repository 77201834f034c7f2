"""A small administrative glossary: words citizens use in French, Italian, Polish, Turkish, Kurmanji,
Arabic and English for the services of topics.yaml, mapped to the German words the knowledge base uses.

The knowledge base has only a few question variants per language besides German; this bridges the gap
for the central nouns and verbs. A query word that starts with a key (folded, see chatbot.text.surface;
Arabic: normalised, with a leading "ال"/"و"/"ب"/"ل" removed) adds the German words as extra query words.
Written from the list of topics, one concept at a time — not from evaluation questions. The glossary
itself is data: chatbot/data/glossary.yaml (checked by chatbot.resources); this module only matches it.
"""

from __future__ import annotations

from sprechstunde.chatbot import resources
from sprechstunde.chatbot.text import normalise, surface, words

# German target words → the foreign word beginnings that mean them (chatbot/data/glossary.yaml).
_GLOSSARY = resources.glossary()
CONCEPTS: dict[str, list[str]] = {target: list(keys) for target, keys in _GLOSSARY.concepts.items()}
ARABIC: dict[str, list[str]] = {target: list(keys) for target, keys in _GLOSSARY.arabic.items()}


def _folded(text: str) -> str:
    """Words as the index sees them: elisions split off ("d'identité" → "identite"), folded."""
    return " ".join(surface(w) for w in words(text))


def _index() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    latin = sorted(
        (
            (_folded(key) + (" " if key.endswith(" ") else ""), target)
            for target, keys in CONCEPTS.items()
            for key in keys
        ),
        key=lambda item: -len(item[0]),
    )
    arabic = [(normalise(key), target) for target, keys in ARABIC.items() for key in keys]
    return latin, arabic


LATIN, ARABIC_KEYS = _index()


def expansions(text: str) -> list[str]:
    """German words for the administrative terms in `text` (not German itself)."""
    folded = f" {_folded(text)} "
    found: list[str] = []
    for key, target in LATIN:
        # keys of up to three letters and keys ending in a space only as whole words ("car ", "auto "),
        # the others as word beginnings ("kayb" for "kaybettim")
        needle = f" {key} " if len(key) <= 3 else f" {key}"
        if needle in folded and target not in found:
            found.append(target)
    if any("\u0600" <= c <= "\u06ff" for c in text):
        normal = normalise(text)
        for key, target in ARABIC_KEYS:
            if key in normal and target not in found:
                found.append(target)
    return found
