"""Which of the eight chat languages a message is written in.

Chat messages are short ("perso weg"), so general-purpose detectors guess wildly on them and know no
Kurmanji. This detector uses what is reliable here: the script (Arabic), letters that only some of the
languages have (ı ğ: Turkish; ł ą ę: Polish; ê î û: Kurmanji; ä ö ß: German), small stopword lists, and
the words the knowledge base itself uses in each language. German wins ties: it is the city's language.
"""

from __future__ import annotations

from collections.abc import Mapping

from sprechstunde.chatbot.text import LANGUAGES, normalise, surface, words

LETTERS: dict[str, tuple[str, float]] = {
    "ä": ("de", 2.0),
    "ö": ("de", 1.0),  # also Turkish
    "ü": ("de", 1.0),  # also Turkish
    "ß": ("de", 3.0),
    "ı": ("tr", 3.0),
    "ğ": ("tr", 3.0),
    "ş": ("tr", 1.0),  # also Kurmanji
    "ł": ("pl", 3.0),
    "ą": ("pl", 3.0),
    "ę": ("pl", 3.0),
    "ś": ("pl", 3.0),
    "ź": ("pl", 3.0),
    "ż": ("pl", 3.0),
    "ć": ("pl", 3.0),
    "ń": ("pl", 3.0),
    "ê": ("ku", 2.5),
    "î": ("ku", 2.0),
    "û": ("ku", 2.0),
    "é": ("fr", 1.5),
    "è": ("fr", 1.0),
    "à": ("fr", 0.7),
    "ç": ("fr", 0.5),
    "ù": ("it", 0.5),
    "ò": ("it", 1.5),
    "ì": ("it", 1.5),
}
# Frequent function words that are distinctive (kept apart from the retrieval stopwords, which overlap).
MARKERS: dict[str, set[str]] = {
    "de": {
        "ich",
        "und",
        "der",
        "die",
        "das",
        "mein",
        "meine",
        "nicht",
        "wie",
        "wo",
        "was",
        "kann",
        "muss",
        "ist",
        "für",
        "mit",
        "ein",
        "eine",
        "bei",
        "brauche",
        "habe",
        "wann",
        "welche",
        "mich",
        "mir",
    },
    "en": {
        "i",
        "the",
        "my",
        "how",
        "what",
        "where",
        "can",
        "do",
        "is",
        "for",
        "need",
        "to",
        "a",
        "want",
        "when",
        "which",
        "does",
        "should",
        "have",
        "get",
        "and",
        "it",
        "of",
        "with",
        "am",
    },
    "fr": {
        "je",
        "le",
        "la",
        "les",
        "mon",
        "ma",
        "mes",
        "comment",
        "est",
        "pour",
        "dois",
        "faut",
        "quels",
        "quelle",
        "où",
        "une",
        "un",
        "des",
        "du",
        "avec",
        "veux",
        "puis",
        "ai",
        "et",
        "que",
        "qui",
    },
    "it": {
        "il",
        "lo",
        "la",
        "gli",
        "mio",
        "mia",
        "come",
        "dove",
        "posso",
        "devo",
        "per",
        "una",
        "un",
        "con",
        "sono",
        "ho",
        "cosa",
        "quale",
        "quali",
        "voglio",
        "del",
        "della",
        "che",
        "non",
        "serve",
    },
    "pl": {
        "jak",
        "gdzie",
        "czy",
        "mój",
        "moja",
        "moje",
        "mam",
        "muszę",
        "chcę",
        "się",
        "dla",
        "jest",
        "nie",
        "na",
        "do",
        "co",
        "ile",
        "potrzebuję",
        "mogę",
        "w",
        "z",
        "i",
    },
    "tr": {
        "nasıl",
        "nerede",
        "ne",
        "benim",
        "bir",
        "için",
        "mi",
        "mı",
        "var",
        "istiyorum",
        "ile",
        "ve",
        "kadar",
        "nereden",
        "gerekiyor",
        "lazım",
        "yapabilirim",
        "bu",
    },
    "ku": {
        "çawa",
        "li",
        "ji",
        "min",
        "ez",
        "bi",
        "çi",
        "çiqas",
        "dikarim",
        "divê",
        "heye",
        "kû",
        "ku",
        "û",
        "ya",
        "yê",
        "bo",
        "dixwazim",
        "re",
        "ne",
    },
    "ar": set(),
}


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
