"""Text normalisation for retrieval: tokens, stems, umlaut and accent folding, per language.

Citizens write "Fuehrerschein", "Fuhrerschein" and "Führerschein"; all three must meet the same index
term. So every word is lower-cased, stemmed with the Snowball stemmer of its language (where one
exists; Kurmanji has none, so a fixed-length prefix stands in) and then folded to ASCII-ish letters
(ä→a, ß→ss, ş→s, ł→l, Arabic letter variants unified). German "ae/oe/ue" spellings are folded too.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import Stemmer

from sprechstunde.chatbot import resources

LANGUAGES = resources.LANGUAGES
STEMMERS = {
    "de": "german",
    "en": "english",
    "fr": "french",
    "it": "italian",
    "pl": "polish",
    "tr": "turkish",
    "ar": "arabic",
}
PREFIX_STEM = 6  # languages without a stemmer: the first letters of a word stand for its stem

WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?", re.UNICODE)
ARABIC_SCRIPT = re.compile("[\u0600-\u06ff]")
ARABIC_DIACRITICS = re.compile("[\u064b-\u065f\u0670\u0640]")
ARABIC_LETTERS = str.maketrans({"أ": "ا", "إ": "ا", "آ": "ا", "ة": "ه", "ى": "ي", "ؤ": "و", "ئ": "ي"})
SPECIAL_LETTERS = str.maketrans({"ß": "ss", "ı": "i", "ł": "l", "ø": "o", "æ": "ae", "œ": "oe", "đ": "d"})
GERMAN_DIGRAPHS = re.compile(r"(?<=[^aeiouq\W])(ae|oe|ue)|^(ae|oe|ue)(?=[^aeiou])")

# Words that carry no topic; kept small on purpose (BM25's idf handles the rest): chatbot/data/language.yaml.
STOPWORDS: dict[str, frozenset[str]] = {
    lang: frozenset(words) for lang, words in resources.language().stopwords.items()
}


def fold(word: str) -> str:
    """Accent- and umlaut-free lower case form, so "Führerschein" and "Fuhrerschein" meet."""
    word = word.translate(SPECIAL_LETTERS)
    word = unicodedata.normalize("NFKD", word)
    return "".join(c for c in word if not unicodedata.combining(c))


def fold_german_digraphs(word: str) -> str:
    """ "fuehrerschein" → "fuhrerschein" (the spelling without umlaut keys); applied symmetrically to
    index and query, so a wrong split ("steuer" → "steur") costs nothing."""
    return GERMAN_DIGRAPHS.sub(lambda m: (m.group(1) or m.group(2))[0], word)


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    if ARABIC_SCRIPT.search(text):
        text = ARABIC_DIACRITICS.sub("", text).translate(ARABIC_LETTERS)
    return text


def words(text: str) -> list[str]:
    """Lower-cased words of `text`. An apostrophe splits off an elided article, preposition or pronoun
    ("l'état", "m'enregistrer", "all'asilo" → "état", "enregistrer", "asilo") or a Turkish suffix
    ("Türkiye'ye" → "türkiye"): the word is the longer part (a head of one or two letters always goes)."""
    out = []
    for word in WORD.findall(normalise(text)):
        head, mark, tail = word.replace("’", "'").partition("'")
        out.append((tail if len(head) <= 2 or len(tail) > len(head) else head) if mark else word)
    return out


@lru_cache(maxsize=16)
def _stemmer(language: str) -> Stemmer.Stemmer | None:
    name = STEMMERS.get(language)
    return Stemmer.Stemmer(name) if name else None


@lru_cache(maxsize=200_000)
def stem(word: str, language: str) -> str:
    """The folded stem of one lower-case word in `language`."""
    if "'" in word or "’" in word:  # French/Italian elision: l'état → état
        head, _, tail = word.replace("’", "'").partition("'")
        if len(head) <= 2:
            word = tail
    stemmer = _stemmer(language)
    if stemmer is not None:
        stemmed = stemmer.stemWord(word)
    else:
        stemmed = word[:PREFIX_STEM]
    if language == "ar" and stemmed.startswith("ال") and len(stemmed) > 4:
        stemmed = stemmed[2:]
    return fold_german_digraphs(fold(stemmed))


@lru_cache(maxsize=200_000)
def surface(word: str) -> str:
    """The folded word itself (no stemming), used for fuzzy matching and compounds."""
    return fold_german_digraphs(fold(word))


def char_ngrams(word: str, n: int = 4) -> list[str]:
    """Character n-grams of a folded word with boundary marks: compounds share them with their parts."""
    padded = f"#{word}#"
    if len(padded) <= n:
        return [padded]
    return [padded[i : i + n] for i in range(len(padded) - n + 1)]
