"""Matching the engine's general word lists: requests for a person, follow-up aspects, out-of-scope
subjects, negative feedback, German colloquialisms; and the bot's own sentences in the eight languages.

The lists themselves are data (chatbot/data/lexicon.yaml and sentences.yaml, checked by
chatbot.resources): entries are folded (see chatbot.text.fold: no accents, no umlauts, lower case) and
matched as word prefixes, Arabic as substrings of the normalised text (its particles are glued to the
word). They are topic-independent on purpose: topic knowledge lives in chatbot/knowledge/*.yaml.
"""

from __future__ import annotations

import re

from sprechstunde.chatbot import resources
from sprechstunde.chatbot.text import fold, fold_german_digraphs, normalise, words

_WORDS = resources.lexicon()
_SENTENCES = resources.sentences()

# asking for a person (regular expressions; person nouns and verbs of all languages, German first)
PERSON_STRONG = list(_WORDS.person.strong)
PERSON_NOUNS = [noun for nouns in _WORDS.person.nouns.values() for noun in nouns]
PERSON_VERBS = [verb for verbs in _WORDS.person.verbs.values() for verb in verbs]
WANT_VERBS = list(_WORDS.person.want)
POLITE = set(_WORDS.person.polite)
# Arabic entries are matched in the normalised text (أ/إ/آ → ا, ة → ه, ى → ي, ئ → ي …): normalised alike
ARABIC_PERSON = [normalise(w) for w in _WORDS.person.arabic_nouns]
ARABIC_TALK = [normalise(w) for w in _WORDS.person.arabic_verbs]
# follow-up aspects, and what continues a conversation
ASPECTS: dict[str, list[str]] = {name: list(words) for name, words in _WORDS.aspects.items()}
ARABIC_ASPECTS: dict[str, list[str]] = {
    name: [normalise(w) for w in words] for name, words in _WORDS.arabic_aspects.items()
}
CONTINUATION = re.compile(_WORDS.continuation)
ANAPHORA = set(_WORDS.anaphora)
# words asking about the conversation's topic without naming a subject, per language (folded)
FOLLOWUP_WORDS: dict[str, frozenset[str]] = {
    lang: frozenset(normalise(w) if lang == "ar" else w for w in words)
    for lang, words in _WORDS.followup_words.items()
}
# out of scope (all kinds of subject in one list)
OUT_OF_SCOPE = [word for words in _WORDS.out_of_scope.values() for word in words]
ARABIC_OUT_OF_SCOPE = [normalise(w) for w in _WORDS.arabic_out_of_scope]
# the citizen says the answer did not help
SHORT_NO = re.compile(_WORDS.short_no)
UNHELPFUL = list(_WORDS.unhelpful)
# German colloquialisms and everyday words → the words the knowledge base uses
COLLOQUIAL_DE: dict[str, str] = dict(_WORDS.colloquial_de)
# the bot's own sentences and the labels of an answer's parts
MESSAGES: dict[str, dict[str, str]] = {key: dict(texts) for key, texts in _SENTENCES.messages.items()}
LABELS: dict[str, dict[str, str]] = {lang: dict(labels) for lang, labels in _SENTENCES.labels.items()}


def message(key: str, language: str, **values: str) -> str:
    table = MESSAGES[key]
    text = table.get(language) or table["de"]
    return text.format(**values) if values else text


def _folded(text: str) -> str:
    return fold_german_digraphs(fold(normalise(text)))


def _names_person(text: str) -> bool:
    """A word of `text` is a person noun with at most an inflection ending ("Beraterin", "człowiekiem"),
    not a longer compound ("Personalausweis")."""
    for word in text.split():
        for noun in PERSON_NOUNS:
            if word.startswith(noun) and len(word) - len(noun) <= 3:
                return True
    return False


def _has_prefix(text: str, prefixes: list[str]) -> bool:
    """Some word of `text` (folded, space-separated) starts with one of `prefixes`; multi-word entries
    match as phrases."""
    padded = f" {text} "
    return any(f" {p}" in padded for p in prefixes)


def _clean(text: str) -> str:
    return re.sub(r"[^\w']+", " ", _folded(text)).strip()


def asks_for_person(text: str) -> bool:
    """The citizen asks to talk to a human, in any of the eight languages."""
    clean = _clean(text)
    if any(re.search(pattern, clean) for pattern in PERSON_STRONG):
        return True
    rest = [w for w in clean.split() if w not in POLITE]
    if rest and len(rest) <= 2 and all(_names_person(w) for w in rest):
        return True  # "Mitarbeiter bitte", "Berater!!!"
    if _names_person(clean) and _has_prefix(clean, PERSON_VERBS):
        return True
    tokens = clean.split()
    for index, token in enumerate(tokens):
        if _has_prefix(token, WANT_VERBS) and any(_names_person(t) for t in tokens[index + 1 : index + 4]):
            return True  # "ich will zu einem Menschen", "I need a human"
    arabic = normalise(text)
    return any(n in arabic for n in ARABIC_PERSON) and any(v in arabic for v in ARABIC_TALK)


# the aspects' phrases (entries of several words), longest first
_PHRASES = sorted(
    ((p, name) for name, prefixes in ASPECTS.items() for p in prefixes if " " in p.strip()),
    key=lambda item: -len(item[0]),
)


def aspects(text: str) -> list[str]:
    """Follow-up aspects the message asks about ("cost", "documents", "duration", "online"). A phrase
    is read before the words in it: "combien de temps" asks how long, not also what it costs
    ("combien")."""
    clean = f" {_clean(text)} "
    arabic = normalise(text)
    found: list[str] = []
    for phrase, name in _PHRASES:
        if f" {phrase}" in clean:
            found.append(name)
            clean = clean.replace(f" {phrase}", " ")
    found += [name for name, prefixes in ASPECTS.items() if _has_prefix(clean.strip(), prefixes)]
    found = list(dict.fromkeys(found))
    found += [
        name
        for name, words in ARABIC_ASPECTS.items()
        if name not in found and any(w in arabic for w in words)
    ]
    return found


def asks_documents(word: str) -> bool:
    """`word` (as chatbot.text.words gives it) only asks what to bring ("Unterlagen", "documents",
    "الوثائق"): it says nothing about which service."""
    folded = _folded(word)
    if any(folded.startswith(p) for p in ASPECTS.get("documents", []) if " " not in p.strip()):
        return True
    return any(w in word for w in ARABIC_ASPECTS.get("documents", []) if " " not in w)


def continues(text: str) -> bool:
    return bool(CONTINUATION.match(_clean(text)))


def subject_words(text: str, language: str, *, person: bool = False) -> list[str]:
    """The words of `text` that may name a subject, in the order written: without the aspect words
    ("kostet", "Unterlagen", "تكلفته"), the words pointing back ("das"), the follow-up words of the
    language and German ("machen", "jetzt", "zrobić") and, with `person`, the words asking for a person
    ("Berater", "sprechen"). Stopwords stay: they join the glossary's phrases ("permis de séjour")."""
    tokens = words(text)
    clean = f" {_clean(text)} "
    arabic = normalise(text)
    # the words of multi-word aspect phrases found in the text ("how much", "ne kadar", "كم من الوقت")
    phrase_words = {
        word
        for prefixes in ASPECTS.values()
        for phrase in prefixes
        if " " in phrase.strip() and f" {phrase}" in clean
        for word in phrase.split()
    }
    phrase_words |= {
        word
        for entries in ARABIC_ASPECTS.values()
        for phrase in entries
        if " " in phrase and phrase in arabic
        for word in phrase.split()
    }
    single = [p for group in ASPECTS.values() for p in group if " " not in p.strip()]
    arabic_single = [w for group in ARABIC_ASPECTS.values() for w in group if " " not in w]
    followup = FOLLOWUP_WORDS.get(language, frozenset()) | FOLLOWUP_WORDS.get("de", frozenset())
    kept = []
    for token in tokens:
        folded = _folded(token)
        bare = token[1:] if token.startswith("و") and len(token) > 3 else token  # Arabic "and …"
        if (
            token in ANAPHORA
            or folded in phrase_words
            or token in phrase_words
            or any(folded.startswith(p.strip()) for p in single)
            or any(w in token for w in arabic_single)
            or folded in followup
            or bare in followup
            or (person and _person_word(folded))
        ):
            continue
        kept.append(token)
    return kept


def _person_word(word: str) -> bool:
    """A word that asks for a person: a person noun, a verb of talking or wanting, a polite word."""
    return (
        _names_person(word)
        or word in POLITE
        or any(word.startswith(p.strip()) for p in PERSON_VERBS + WANT_VERBS if " " not in p.strip())
    )


def out_of_scope_terms(text: str) -> list[str]:
    clean = _clean(text)
    found = [p.strip() for p in OUT_OF_SCOPE if _has_prefix(clean, [p])]
    arabic = normalise(text)
    return found + [w for w in ARABIC_OUT_OF_SCOPE if w in arabic]


def unhelpful(text: str) -> bool:
    """The citizen says the last answer did not help ("Nein, das hilft mir nicht")."""
    clean = _clean(text)
    if len(clean.split()) <= 3 and SHORT_NO.match(clean):
        return True
    return any(re.search(p, clean) for p in UNHELPFUL)


def colloquial_expansion(word: str) -> str | None:
    return COLLOQUIAL_DE.get(word)
