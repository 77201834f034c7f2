"""Lexical retrieval of topics: two BM25 channels over one document per topic.

- words: every question variant, keyword and title of a topic in all eight languages, each word indexed
  as its folded surface form and as its stem in the language it was written in; compounds are also
  indexed by their parts ("Personalausweis" → "personal", "ausweis") when the parts are words of the
  knowledge base. A query word scores through the best of its forms (surface, stem in the detected
  language, German and English stem), a word the base does not know through its nearest spelling
  (typos) or its compound parts.
- character 4-grams of the folded words: catches inflection, compounds and cognates across languages
  ("Reisepass" / "passport" / "pasaport") that the word channel misses.

The two channels are normalised by what the query could score at most and mixed; the confidence is
calibrated from that mix, the gap to the runner-up, and how many of the query's words the winner
explains (out-of-scope questions explain few).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from rapidfuzz import fuzz, process

from sprechstunde.chatbot import glossary, lexicon, resources
from sprechstunde.chatbot.knowledge import KnowledgeBase, Topic
from sprechstunde.chatbot.text import STOPWORDS, char_ngrams, normalise, stem, surface, words

K1 = 1.2
B = 0.5
NGRAM_WEIGHT = 0.45
ANSWER_WEIGHT = 0.3  # answer texts (de, en) count a little: they name the situations citizens describe
KEYWORD_REPEAT = 2  # keywords and titles count twice: they name the topic
MIN_PART = 4  # compound parts shorter than this are not trusted ("amt" is everywhere)
# German separable verbs (chatbot/data/language.yaml): prefixes tried off an unknown word, in order, and
# particles joined back to their verb
SEPARABLE = tuple(resources.language().german_separable.prefixes)
# A query word the base does not know weighs twice the rarest known word in the coverage: chosen with
# bench/chatbot_calibrate.py (held-out variants vs. its own out-of-scope questions), not the eval set.
UNKNOWN_WEIGHT = 2.0
MAX_QUERY_WORDS = 40
GLOSSARY = True
# Below this explained share the bot asks back instead of answering; 0.15 chosen on held-out variants and
# bench/chatbot_calibrate.py's own out-of-scope questions (0.25 refused one more of them but answered 3 %
# fewer held-out questions right).
MIN_COVERAGE = 0.15
PARTIAL = "~"  # marks a query form that is only part of an unknown compound
PARTICLES = set(resources.language().german_separable.particles)
ARABIC_PREFIXES = tuple(
    sorted((normalise(p) for p in resources.language().arabic_prefixes), key=len, reverse=True)
)


class BM25:
    """Okapi BM25 over a handful of documents held as token counters (small enough for plain dicts).

    A term's postings are worked out the first time a query asks for it, not for every term up front:
    the eight languages' words and character n-grams make some 160,000 of them, most of which no query
    ever names, and computing them all was a third of building the index (at every start and `kb reload`).
    """

    def __init__(self, docs: list[Counter[str]], *, k1: float = K1, b: float = B) -> None:
        self.k1, self.b = k1, b
        self.docs = docs
        self.lengths = [sum(doc.values()) for doc in docs]
        self.avg = (sum(self.lengths) / len(docs)) if docs else 1.0
        df: Counter[str] = Counter()
        for doc in docs:
            df.update(doc.keys())
        n = len(docs)
        self.df = dict(df)
        self.idf = {term: math.log(1 + (n - count + 0.5) / (count + 0.5)) for term, count in df.items()}
        self._norms = [k1 * (1 - b + b * length / self.avg) for length in self.lengths]
        self._postings: dict[str, list[tuple[int, float]]] = {}

    def term_scores(self, term: str) -> list[tuple[int, float]]:
        """(document, score) for each document holding `term`, in document order."""
        scores = self._postings.get(term)
        if scores is None:
            idf = self.idf.get(term)
            if idf is None:
                return []
            k1 = self.k1
            scores = [
                (index, idf * tf * (k1 + 1) / (tf + self._norms[index]))
                for index, doc in enumerate(self.docs)
                if (tf := doc.get(term))
            ]
            self._postings[term] = scores  # two threads may both compute it: the same list
        return scores

    def best(self, term: str) -> float:
        """What one occurrence of `term` can contribute at most (the normalising ceiling)."""
        return self.idf.get(term, 0.0) * (self.k1 + 1) / (1 + self.k1 * (1 - self.b))


@dataclass(frozen=True)
class Hit:
    topic: str
    score: float


@dataclass(frozen=True)
class Ranking:
    """The topics ranked for one query, with what the confidence was computed from."""

    hits: list[Hit]
    confidence: float
    coverage: float  # share of the query's content words that the winning topic explains
    known: int  # query content words the knowledge base knows at all
    content: int  # query content words

    @property
    def top(self) -> Hit | None:
        return self.hits[0] if self.hits else None


def _naming_words(topic: Topic) -> Iterable[tuple[str, str]]:
    """(word, language) of the topic's title and keywords: the words that name it."""
    for lang, keywords in topic.keywords.items():
        for text in keywords:
            for word in words(text):
                yield word, lang
    for lang, title in topic.title.items():
        for word in words(title):
            yield word, lang


def _doc_words(topic: Topic) -> Iterable[tuple[str, str, int]]:
    """(word, language, weight) of everything that says what the topic is about."""
    for lang, variants in topic.questions.items():
        for text in variants:
            for word in words(text):
                yield word, lang, 1
    for lang, keywords in topic.keywords.items():
        for text in keywords:
            for word in words(text):
                yield word, lang, KEYWORD_REPEAT
    for lang, title in topic.title.items():
        for word in words(title):
            yield word, lang, KEYWORD_REPEAT
    if ANSWER_WEIGHT:
        for lang, answer in topic.answer.items():
            for word in words(answer):
                yield word, lang, ANSWER_WEIGHT


class TopicIndex:
    """Built once per knowledge base, at every start and `kb reload`; read-only afterwards.

    Each topic's words are taken once per (word, language) with their weights summed: the variants of
    eight languages repeat them, and working out forms and n-grams per occurrence made the build take
    1.3-1.9 s on the CI VM on a slow day (0.7 s this way; the rankings are the same, the scores equal
    to 1e-15).
    """

    def __init__(self, base: KnowledgeBase) -> None:
        self.base = base
        self.topic_ids = [topic.id for topic in base]
        # a topic repeats its words across variants: each (word, language) once, with its summed weight
        topic_weights: list[dict[tuple[str, str], float]] = []
        surfaces: set[str] = set()
        self.vocabulary_by_language: dict[str, set[str]] = defaultdict(set)
        for topic in base:
            weights: dict[tuple[str, str], float] = {}
            for w, lang, weight in _doc_words(topic):
                if (w, lang) in weights:
                    weights[w, lang] += weight
                elif not _stop(w, lang):
                    weights[w, lang] = weight
            topic_weights.append(weights)
            for w, lang in weights:
                folded = surface(w)
                surfaces.add(folded)
                self.vocabulary_by_language[lang].add(folded)
            for lang, text in topic.answer.items():
                self.vocabulary_by_language[lang].update(surface(w) for w in words(text))
        self.surfaces = {w for w in surfaces if len(w) >= MIN_PART}
        word_docs, gram_docs = [], []
        for weights in topic_weights:
            doc: Counter[str] = Counter()
            by_surface: dict[str, float] = {}
            for (w, lang), weight in weights.items():
                folded = surface(w)
                for form in {folded, stem(w, lang), *self._parts(folded)}:
                    doc[form] += weight
                by_surface[folded] = by_surface.get(folded, 0) + weight
            grams: Counter[str] = Counter()
            for folded, weight in by_surface.items():
                for gram in char_ngrams(folded):
                    grams[gram] += weight
            word_docs.append(doc)
            gram_docs.append(grams)
        self.words = BM25(word_docs)
        self.grams = BM25(gram_docs)
        self.vocabulary = set(self.words.idf)
        self._max_idf = max(self.words.idf.values(), default=1.0)
        self.naming = {
            form
            for topic in base
            for w, lang in _naming_words(topic)
            if not _stop(w, lang) and len(surface(w)) >= MIN_PART
            for form in (surface(w), stem(w, lang))
        }
        # the forms of the titles' words (every language) → the topics whose title has them
        self.titled: dict[str, set[str]] = defaultdict(set)
        for topic in base:
            for lang, title in topic.title.items():
                for w in words(title):
                    if not _stop(w, lang) and len(surface(w)) >= MIN_PART:
                        for form in (surface(w), stem(w, lang)):
                            self.titled[form].add(topic.id)
        self._fuzzy_choices = sorted(w for w in self.surfaces if len(w) >= 5)

    # --- query side ----------------------------------------------------------------------------------

    def _parts(self, word: str) -> list[str]:
        """Split a compound into two known words (with a linking s/n/e between them)."""
        if len(word) < 2 * MIN_PART:
            return []
        for cut in range(len(word) - MIN_PART, MIN_PART - 1, -1):
            head, tail = word[:cut], word[cut:]
            if tail not in self.surfaces or tail == word:
                continue
            for link in ("", "s", "n", "es", "en", "e"):
                if link and not head.endswith(link):
                    continue
                left = head[: len(head) - len(link)] if link else head
                if len(left) >= MIN_PART and left in self.surfaces:
                    return [left, tail]
        return []

    def forms(self, word: str, language: str) -> list[str]:
        """Index terms one query word may stand for, best first; [] if the base knows none."""
        folded = surface(word)
        candidates = [folded, stem(word, language), stem(word, "de"), stem(word, "en")]
        found = [c for c in dict.fromkeys(candidates) if c in self.vocabulary]
        if found:
            return found
        if language == "de":
            # "hergezogen" → "gezogen": a separable prefix the base does not use with this verb
            for prefix in SEPARABLE:
                rest = folded[len(prefix) :]
                if folded.startswith(prefix) and len(rest) >= MIN_PART:
                    found = [c for c in (rest, stem(rest, "de")) if c in self.vocabulary]
                    if found:
                        return found
        if language == "ar":
            # "لجواز" → "جواز": a particle or the article glued to a word the base knows without it
            for prefix in ARABIC_PREFIXES:
                rest = folded[len(prefix) :]
                if folded.startswith(prefix) and len(rest) >= 3:
                    found = [c for c in (rest, stem(rest, "ar")) if c in self.vocabulary]
                    if found:
                        return found
        expansion = lexicon.colloquial_expansion(word)
        if expansion:
            found = [c for c in (surface(expansion), stem(expansion, "de")) if c in self.vocabulary]
            if found:
                return found
        if len(folded) >= 5 and self._fuzzy_choices:
            limit = 1 if len(folded) < 8 else 2
            match = process.extractOne(
                folded,
                self._fuzzy_choices,
                scorer=fuzz.ratio,
                score_cutoff=100 * (1 - (2 * limit) / (2 * len(folded) + 1)),
            )
            if match is not None:
                return [match[0]]
        return []

    def query_terms(self, text: str, language: str) -> tuple[list[list[str]], list[str], int]:
        """Per content word its index forms (a compound may yield two entries), the n-grams, and the
        number of content words."""
        stop = _folded_stopwords(language)
        tokens = words(text)
        if language == "de":
            tokens = self._join_particles(tokens)
        content = [w for w in tokens if surface(w) not in stop and not w.isdigit() and len(w) > 1]
        content = content[:MAX_QUERY_WORDS]  # a question, not an essay: bounds the work per message
        # "Welche Unterlagen brauche ich für den Reisepass?": what to bring names no service — left out
        # when the question names something else (the knowledge base's few variants per language would
        # make a rare word like "الوثائق" decide the topic)
        topical = [w for w in content if not lexicon.asks_documents(w)]
        content = topical or content
        if language != "de" and GLOSSARY:
            # the German words for administrative terms in other languages ("passeport" → "reisepass")
            content += [w for term in glossary.expansions(text) for w in term.split()]
        if language == "de":
            content = [lexicon.colloquial_expansion(w) or w for w in content] + [
                w for w in content if lexicon.colloquial_expansion(w)
            ]
        groups: list[list[str]] = []
        grams: list[str] = []
        for word in content:
            found = self.forms(word, language)
            if not found:
                parts = self._query_parts(surface(word))
                if len(parts) == 1:  # one known part of an unknown compound: a clue that explains nothing
                    groups.append([PARTIAL + parts[0]])
                else:
                    groups.extend([part] for part in parts)
                if not parts:
                    groups.append([])
            else:
                groups.append(found)
            grams.extend(char_ngrams(surface(word)))
        return groups, grams, len(content)

    def _join_particles(self, tokens: list[str]) -> list[str]:
        """German separable verbs: "wie melde ich mein Auto ab" → "abmelde" for the verb, the particle
        dropped — when the joined word is one the knowledge base knows."""
        out = list(tokens)
        for index, particle in enumerate(tokens):
            if particle not in PARTICLES or index == 0:
                continue
            for position in range(index - 1, -1, -1):
                joined = particle + out[position]
                if surface(joined) in self.vocabulary or stem(joined, "de") in self.vocabulary:
                    out[position] = joined
                    out[index] = ""
                    break
        return [w for w in out if w]

    def _query_parts(self, word: str) -> list[str]:
        if len(word) < 2 * MIN_PART:
            return []
        for cut in range(len(word) - MIN_PART, MIN_PART - 1, -1):
            head, tail = word[:cut], word[cut:]
            tail_form = tail if tail in self.vocabulary else None
            if tail_form is None:
                continue
            for link in ("", "s", "n", "es", "en", "e"):
                if link and not head.endswith(link):
                    continue
                left = head[: len(head) - len(link)] if link else head
                if len(left) >= MIN_PART and left in self.vocabulary:
                    return [left, tail_form]
        # one known part is still a clue: "ausweisverlängerung" → "ausweis"
        for size in range(len(word) - 3, MIN_PART - 1, -1):
            if word[-size:] in self.surfaces:
                return [word[-size:]]
            if word[:size] in self.surfaces:
                return [word[:size]]
        return []

    def specific_words(self, text: str, language: str, max_topics: int = 3) -> list[str]:
        """Words of `text` that name a topic — a title or keyword word found in at most `max_topics`
        topics ("Reisepass", not "lange" or "persönlich")."""
        groups, _, _ = self.query_terms(text, language)
        return [
            forms[0]
            for forms in groups
            if any(f in self.naming and self.words.df.get(f, 10**6) <= max_topics for f in forms)
            and not forms[0].startswith(PARTIAL)
        ]

    def named_topics(self, text: str, language: str, max_topics: int = 3) -> dict[str, set[str]]:
        """The words of `text` that are words of the titles of at most `max_topics` topics — the
        services' names: "Reisepass", "KiTa-Platz", "Wunschkennzeichen", not "beantragen" — each with
        the topics whose title has it. The German words the glossary adds for the other languages count
        too ("passeport" → "reisepass")."""
        groups, _, _ = self.query_terms(text, language)
        found: dict[str, set[str]] = {}
        for forms in groups:
            if not forms or forms[0].startswith(PARTIAL):
                continue
            for form in forms:
                topics = self.titled.get(form)
                if topics and len(topics) <= max_topics:
                    found[forms[0]] = topics
                    break
        return found

    def _weight(self, forms: list[str]) -> float:
        if not forms:
            return self._max_idf * UNKNOWN_WEIGHT
        return max(self.words.idf.get(f.lstrip(PARTIAL), self._max_idf) for f in forms)

    def search(self, text: str, language: str, *, limit: int = 5) -> Ranking:
        groups, grams, content = self.query_terms(text, language)
        n = len(self.topic_ids)
        word_scores = [0.0] * n
        explained: list[set[int]] = [set() for _ in range(n)]
        partial_hit = [False] * n
        ceiling = 0.0
        for position, forms in enumerate(groups):
            if not forms:
                continue
            partial = forms[0].startswith(PARTIAL)
            if partial:
                forms = [forms[0][len(PARTIAL) :]]
            best = [0.0] * n
            for form in forms:
                for doc, value in self.words.term_scores(form):
                    if value > best[doc]:
                        best[doc] = value
            ceiling += max(self.words.best(form) for form in forms)
            for doc in range(n):
                if best[doc]:
                    word_scores[doc] += best[doc] * (0.5 if partial else 1.0)
                    if partial:
                        partial_hit[doc] = True
                    else:
                        explained[doc].add(position)
        gram_scores = [0.0] * n
        gram_ceiling = 0.0
        for gram in set(grams):
            gram_ceiling += self.grams.best(gram)
            for doc, value in self.grams.term_scores(gram):
                gram_scores[doc] += value
        # unknown words count against the ceiling: a query of mostly unknown words is unexplained
        unknown = sum(1 for forms in groups if not forms)
        ceiling += unknown * 4.0
        mixed = []
        for doc in range(n):
            w = word_scores[doc] / ceiling if ceiling else 0.0
            g = gram_scores[doc] / gram_ceiling if gram_ceiling else 0.0
            mixed.append((1 - NGRAM_WEIGHT) * w + NGRAM_WEIGHT * g)
        order = sorted(range(n), key=lambda d: -mixed[d])
        hits = [Hit(self.topic_ids[d], mixed[d]) for d in order[:limit] if mixed[d] > 0]
        if not hits:
            return Ranking([], 0.0, 0.0, sum(1 for f in groups if f), max(content, 1))
        top = order[0]
        second = mixed[order[1]] if n > 1 else 0.0
        # the share of the query's weight the winner explains: rare words weigh more than "year" or
        # "look", a word the base does not know at all weighs as much as the rarest one
        weights = [self._weight(forms) for forms in groups]
        total = sum(weights)
        coverage = sum(weights[i] for i in explained[top]) / total if total else 0.0
        confidence = calibrate(mixed[top], mixed[top] - second, coverage)
        if not explained[top]:
            # only parts of unknown compounds or character n-grams in common: at most a "did you mean"
            confidence = min(confidence, 0.45 if partial_hit[top] else 0.1)
        elif coverage < MIN_COVERAGE:  # most of what the citizen wrote is about something else
            confidence = min(confidence, 0.45)
        return Ranking(hits, confidence, coverage, sum(1 for f in groups if f), max(content, 1))


def calibrate(score: float, gap: float, coverage: float) -> float:
    """0..1 from the mixed score, the lead over the runner-up and the explained share of the query.
    The weights put the answer threshold 0.5 between the knowledge base's own held-out variants and
    out-of-scope questions (bench/chatbot_eval.py prints both)."""
    z = 8.0 * (score - 0.25) + 4.0 * gap + 5.0 * (coverage - 0.6)
    return 1 / (1 + math.exp(-z))


@lru_cache(maxsize=16)
def _folded_stopwords(language: str) -> frozenset[str]:
    """Stopwords of `language`, German and English, folded like query words ("fuer" = "für")."""
    words_ = STOPWORDS.get(language, frozenset()) | STOPWORDS["de"] | STOPWORDS["en"]
    return frozenset(surface(w) for w in words_)


def _stop(word: str, language: str) -> bool:
    return word in STOPWORDS.get(language, frozenset()) or word.isdigit() or len(word) < 2
