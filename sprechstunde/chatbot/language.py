"""Which of the eight chat languages a message is written in.

Chat messages are short ("perso weg"), so general-purpose detectors guess wildly on them and know no
Kurmanji. This detector uses what is reliable here: the script (Arabic), letters that only some of the
languages have (ı ğ: Turkish; ł ą ę: Polish; ê î û: Kurmanji; ä ö ß: German), small stopword lists, and
the words the knowledge base itself uses in each language. German wins ties: it is the city's language.
"""

from __future__ import annotations

from collections.abc import Mapping

from sprechstunde.chatbot import resources
from sprechstunde.chatbot.text import LANGUAGES, normalise, surface, words

# letters only some of the languages have, and frequent distinctive function words: chatbot/data/language.yaml
LETTERS: dict[str, tuple[str, float]] = dict(resources.language().letters)
MARKERS: dict[str, set[str]] = {lang: set(words) for lang, words in resources.language().markers.items()}


def detect(text: str, vocabulary: Mapping[str, set[str]] | None = None, hint: str | None = None) -> str:
    """The language of `text`; `hint` (the page's language) decides when the text itself says little."""
    normal = normalise(text)
    if sum(1 for c in normal if "\u0600" <= c <= "\u06ff") >= 2:
        return "ar"
    scores = dict.fromkeys(LANGUAGES, 0.0)
    for char in normal:
        if char in LETTERS:
            lang, weight = LETTERS[char]
            scores[lang] += weight
    tokens = words(text)
    for word in tokens:
        for lang, markers in MARKERS.items():
            if word in markers:
                scores[lang] += 1.0
        if vocabulary:
            folded = surface(word)
            owners = [lang for lang in LANGUAGES if folded in vocabulary.get(lang, ())]
            if owners and len(owners) < len(LANGUAGES):
                for lang in owners:
                    scores[lang] += 1.0 / len(owners)
    if hint in scores:
        scores[hint] += 0.75
    scores["de"] += 0.25
    best = max(scores, key=lambda lang: scores[lang])
    return best
