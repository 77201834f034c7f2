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

LANGUAGES = ("de", "en", "fr", "it", "pl", "tr", "ku", "ar")
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
ARABIC_DIACRITICS = re.compile("[\u064b-\u065f\u0670\u0640]")
ARABIC_LETTERS = str.maketrans({"أ": "ا", "إ": "ا", "آ": "ا", "ة": "ه", "ى": "ي", "ؤ": "و", "ئ": "ي"})
SPECIAL_LETTERS = str.maketrans({"ß": "ss", "ı": "i", "ł": "l", "ø": "o", "æ": "ae", "œ": "oe", "đ": "d"})
GERMAN_DIGRAPHS = re.compile(r"(?<=[^aeiouq\W])(ae|oe|ue)|^(ae|oe|ue)(?=[^aeiou])")

# Words that carry no topic; kept small on purpose (BM25's idf handles the rest).
STOPWORDS: dict[str, frozenset[str]] = {
    "de": frozenset(
        """aber alle als also am an auch auf aus bei bin bis bitte bzw da dann das dass dem den der des die
        dich dir doch du ein eine einem einen einer eines er es etwa euch für gibt habe haben hallo hat
        hier ich ihr ihre im in ist ja jetzt kann kannst können man mein meine meinem meinen meiner mich
        mir mit muss müssen nach nicht noch nur ob oder sehr sein sich sie sind so soll sollte um und uns
        unser von vor war was weil welche welcher wenn wer werden wie wieder will wir wird wo wurde zu zum
        zur guten tag danke mal gerne brauche brauch brauchen wollen willst machen mache macht
        bekomme bekommen kriege kriegen krieg gerade viel ans beim vom gibts geht hab hat hätte würde
        möchte moechte schon denn eigentlich irgendwie genau einfach dafür dazu wann gemacht""".split()
    ),
    "en": frozenset(
        """a about am an and any are as at be been but by can could do does for from get got have hello hi
        how i if in is it its me my need of on or our please so that the their there this to was we what
        when where which who will with would you your""".split()
    ),
    "fr": frozenset(
        """au aux avec bonjour ce ces comment dans de des du elle en est et il je la le les ma mes mon ne
        nous on ou où par pas pour qu que quel quelle qui sa se son sur une un vous votre est-ce""".split()
    ),
    "it": frozenset(
        """a al alla anche che ci come con cosa da del della di e è gli ho i il in io la le lo ma mi mio
        mia non per più posso sono su un una uno""".split()
    ),
    "pl": frozenset(
        """a ale co czy do i jak jest mam mnie mogę na nie o od po się sie to w we z za że jaki jaka gdzie
        dzień dobry""".split()
    ),
    "tr": frozenset(
        """ve bir bu da de için ile mi mı mu mü ne nasıl nerede ben benim var yok çok merhaba acaba
        ama olarak""".split()
    ),
    "ku": frozenset("""û ez min bi ji li di de ku ev ew çawa çi çiqas ne heye dikarim re ya yê a""".split()),
    "ar": frozenset("""في من على إلى الى عن هل ما كيف أنا انا أريد اريد مع هذا هذه""".split()),
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
    if any("\u0600" <= c <= "\u06ff" for c in text):
        text = ARABIC_DIACRITICS.sub("", text).translate(ARABIC_LETTERS)
    return text


def words(text: str) -> list[str]:
    """Lower-cased words of `text`. An apostrophe splits off an elided article or pronoun ("l'état",
    "m'enregistrer" → "état", "enregistrer") or a Turkish suffix ("Türkiye'ye" → "türkiye")."""
    out = []
    for word in WORD.findall(normalise(text)):
        head, mark, tail = word.replace("’", "'").partition("'")
        out.append((tail if len(head) <= 2 else head) if mark else word)
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


def content_words(text: str, language: str) -> list[str]:
    """The words of `text` without the stopwords of `language` (and of German, which citizens mix in)."""
    stop = STOPWORDS.get(language, frozenset()) | STOPWORDS["de"]
    return [w for w in words(text) if w not in stop and not w.isdigit()]


def char_ngrams(word: str, n: int = 4) -> list[str]:
    """Character n-grams of a folded word with boundary marks: compounds share them with their parts."""
    padded = f"#{word}#"
    if len(padded) <= n:
        return [padded]
    return [padded[i : i + n] for i in range(len(padded) - n + 1)]
