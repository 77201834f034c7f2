"""Deciding what to say: an answer from the knowledge base, a follow-up on the conversation's topic, an
honest "nicht zuständig", or an offer to talk to a person.

The engine is pure (no I/O): it gets the message and the conversation's state and returns a `Reply`
plus the new state. `chatbot.service.ChatService` keeps the state in the store and the knowledge base
fresh. User text is only ever matched against word lists and the index — never formatted into a
template, evaluated or echoed as markup — so "ignore your instructions and …" is just more words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sprechstunde.chatbot import lexicon
from sprechstunde.chatbot.knowledge import KnowledgeBase, Topic
from sprechstunde.chatbot.language import detect
from sprechstunde.chatbot.retrieval import Hit, Ranking, TopicIndex
from sprechstunde.chatbot.text import words

ANSWER_THRESHOLD = 0.5  # confidence from which the bot answers with a topic
REFUSE_BELOW = 0.2  # below this (or with an out-of-scope subject) the bot says it is not responsible
UNHELPFUL_LIMIT = 2  # "after two unhelpful answers" the bot offers a person
# a message of more words is a question of its own, not a follow-up
FOLLOWUP_MAX_TOKENS = 20
# a word names a subject when it is a word of the titles of at most this many topics ("Reisepass",
# not "beantragen"); without one, the rest of a message names a subject when it ranks a topic confidently
# with at least this many words the base knows (one generic word, "Post", ranks some topic high)
SUBJECT_MAX_TOPICS = 3
SUBJECT_MIN_WORDS = 2
MAX_TEXT = 1000

# person requested / two unhelpful answers / the bot is unsure
PERSON, UNHELPFUL, LOW_CONFIDENCE = "person_requested", "unhelpful_answers", "low_confidence"
# an answer (or parts of it) shown in German to a citizen who writes another language: the reply says so
# and offers an advisor who speaks the citizen's language
GERMAN_ONLY = "german_only"
# an amount of money in a text ("70 €", "37,50 €", "€96"): a fees line whose amounts the answer already
# states all of is left out of the whole answer
AMOUNT = re.compile(r"\d+(?:[.,]\d+)?\s?€|€\s?\d+(?:[.,]\d+)?")


@dataclass
class Reply:
    text: str
    language: str
    topic: str | None = None
    confidence: float = 0.0
    escalation: str | None = None  # reason, or None
    office: str | None = None
    kind: str = "answer"  # answer | followup | out_of_scope | unsure | person | unhelpful | empty
    suggestions: list[dict[str, str]] = field(default_factory=list)  # [{topic, title}]
    links: list[dict[str, str]] = field(default_factory=list)  # [{title, url}]
    # an answer's provenance, shown under it: the day its text (in the language served) was last checked
    checked: str | None = None
    german: list[str] = field(default_factory=list)  # the parts shown in German ("address", "fees", …)


@dataclass(frozen=True)
class Subject:
    """What a message names on its own: the ranking of its subject words and the topics they name (a
    title word: `named`) or that ranking's confident first topic."""

    ranking: Ranking
    topics: set[str]
    named: bool


@dataclass(frozen=True)
class Reading:
    """A message read with the conversation's topic: stays (a follow-up) or a subject of its own."""

    ranking: Ranking
    stays: bool


@dataclass
class State:
    """What the engine remembers of a conversation between two messages (stored as JSON)."""

    language: str | None = None
    last_topic: str | None = None
    unhelpful: int = 0
    candidate: str | None = None  # the best guess of the last unsure reply ("Meinten Sie …?")

    def as_json(self) -> dict[str, Any]:
        return {
            "language": self.language,
            "last_topic": self.last_topic,
            "unhelpful": self.unhelpful,
            "candidate": self.candidate,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> State:
        data = data or {}
        unhelpful = data.get("unhelpful", 0)
        return cls(
            language=data.get("language") if isinstance(data.get("language"), str) else None,
            last_topic=data.get("last_topic") if isinstance(data.get("last_topic"), str) else None,
            unhelpful=unhelpful if isinstance(unhelpful, int) else 0,
            candidate=data.get("candidate") if isinstance(data.get("candidate"), str) else None,
        )


class Engine:
    """A knowledge base and its index; immutable, replaced as a whole on reload."""

    def __init__(self, base: KnowledgeBase) -> None:
        self.base = base
        self.index = TopicIndex(base)

    def detect(self, text: str, hint: str | None = None) -> str:
        return detect(text, self.index.vocabulary_by_language, hint)

    def rank(self, text: str, language: str) -> Ranking:
        return self.index.search(text, language)

    def respond(self, text: str, state: State, hint: str | None = None) -> tuple[Reply, State]:
        text = text.strip()[:MAX_TEXT]
        language = self.detect(text, hint or state.language) if text else (hint or state.language or "de")
        state = State(
            language=language,
            last_topic=state.last_topic,
            unhelpful=state.unhelpful,
            candidate=state.candidate,
        )
        if not words(text):
            return Reply(lexicon.message("empty", language), language, kind="empty"), state

        ranking = self.rank(text, language)
        top = self.base.get(ranking.top.topic) if ranking.top else None

        if lexicon.asks_for_person(text):
            # the subject the message names besides the request ("… über meinen Kita-Platz"), else the
            # conversation's topic: "Ich möchte mit einem Mitarbeiter sprechen" is about what came before
            subject = self._subject(text, language, person=True)
            topic = self.base.get(subject.ranking.top.topic) if subject and subject.named else None
            topic = topic or self.base.get(state.last_topic) or self.base.get(state.candidate)
            topic = topic or (top if ranking.confidence >= ANSWER_THRESHOLD else None)
            reply = Reply(
                lexicon.message("person", language) + " " + lexicon.message("offers", language),
                language,
                topic=topic.id if topic else None,
                confidence=ranking.confidence,
                escalation=PERSON,
                office=topic.office if topic else None,
                kind="person",
            )
            return reply, state

        if lexicon.unhelpful(text) and (state.last_topic or state.unhelpful):
            state.unhelpful += 1
            last = self.base.get(state.last_topic)
            if state.unhelpful >= UNHELPFUL_LIMIT:
                return self._unhelpful(language, last, ranking.confidence), state
            if ranking.confidence < ANSWER_THRESHOLD:  # no new question in the same message
                reply = Reply(
                    lexicon.message("rephrase", language),
                    language,
                    confidence=ranking.confidence,
                    office=last.office if last else None,
                    kind="rephrase",
                )
                return reply, state

        aspects = lexicon.aspects(text)
        followup = None  # the aspects asked about the conversation's topic, when the message stays on it
        reading = self._followup(text, language, state, ranking)
        if reading is not None:
            ranking = reading.ranking
            top = self.base.get(ranking.top.topic) if ranking.top else None
            followup = aspects if reading.stays else None

        # An out-of-scope subject ("Einkommensteuer", "Anwalt") wins unless the topic explains nearly
        # everything the citizen wrote ("Hundesteuer" is no income tax).
        out_of_scope = lexicon.out_of_scope_terms(text) if followup is None else []
        if out_of_scope and ranking.coverage < 0.75:
            ranking = Ranking(
                ranking.hits,
                min(ranking.confidence, REFUSE_BELOW / 2),
                ranking.coverage,
                ranking.known,
                ranking.content,
            )
        state.candidate = None
        if top is not None and ranking.confidence >= ANSWER_THRESHOLD:
            state.last_topic = top.id
            reply = self.answer(top, language, aspects if followup is not None or _only_aspect(text) else [])
            reply.confidence = ranking.confidence
            reply.kind = "followup" if followup is not None else "answer"
            return reply, state

        out_of_scope = lexicon.out_of_scope_terms(text)
        if out_of_scope or ranking.confidence < REFUSE_BELOW or ranking.known == 0:
            reply = Reply(
                lexicon.message("out_of_scope", language),
                language,
                confidence=ranking.confidence,
                kind="out_of_scope",
            )
            return reply, state

        state.unhelpful += 1
        state.candidate = top.id if top else None
        suggestions = [
            {"topic": hit.topic, "title": self._title(self.base.topics[hit.topic], language)}
            for hit in ranking.hits[:3]
        ]
        if state.unhelpful >= UNHELPFUL_LIMIT:
            return self._unhelpful(language, top, ranking.confidence, suggestions), state
        titles = " / ".join(s["title"] for s in suggestions)
        reply = Reply(
            lexicon.message("unsure", language)
            + (" " + lexicon.message("did_you_mean", language, titles=titles) if titles else "")
            + " "
            + lexicon.message("offers", language),
            language,
            confidence=ranking.confidence,
            escalation=LOW_CONFIDENCE,
            office=top.office if top else None,
            kind="unsure",
            suggestions=suggestions,
        )
        return reply, state

    # --- pieces ----------------------------------------------------------------------------------------

    def _unhelpful(
        self, language: str, topic: Topic | None, confidence: float, suggestions: list | None = None
    ) -> Reply:
        return Reply(
            lexicon.message("unhelpful", language) + " " + lexicon.message("offers", language),
            language,
            topic=None,
            confidence=confidence,
            escalation=UNHELPFUL,
            office=topic.office if topic else None,
            kind="unhelpful",
            suggestions=suggestions or [],
        )

    def _followup(self, text: str, language: str, state: State, ranking: Ranking) -> Reading | None:
        """The message read in the conversation. The rule: a message that names a subject of its own
        (`_subject`) switches to it, a message without one stays on the conversation's topic.

        - no subject of its own ("Und was kostet das?", "Co muszę teraz zrobić?"), or one that is the
          conversation's topic: stays;
        - a named subject, clear on its own ("Was kostet ein Reisepass?", "Et pour une carte
          d'identité ?"): None, the message is read on its own;
        - a subject that the conversation's topic resolves to one of its topics ("Und für mein Kind?"
          after the passport): that topic, read with the conversation's title;
        - a named subject the context does not resolve: read on its own; a subject only ranked (no
          naming word) that the context reads as the conversation's topic: stays.

        None as well without a conversation, for a long message (a question of its own) and for an
        out-of-scope subject ("Und wie wird das Wetter morgen?")."""
        last = self.base.get(state.last_topic) or self.base.get(state.candidate)
        if last is None or len(words(text)) > FOLLOWUP_MAX_TOKENS:
            return None
        if lexicon.out_of_scope_terms(text):
            return None
        subject = self._subject(text, language, last.id)
        context = f"{self._title(last, 'de')} {self._title(last, language)} {text}"
        combined = self.rank(context, language)
        if subject is not None and last.id not in subject.topics:
            alone = subject.ranking
            clear = alone.confidence >= ANSWER_THRESHOLD and alone.top.topic in subject.topics
            if subject.named and clear:
                return None
            resolved = combined.top is not None and combined.top.topic in subject.topics
            if resolved and combined.confidence >= ANSWER_THRESHOLD:
                return Reading(combined, stays=False)
            if subject.named:
                return None
        # stays: the conversation's topic, whatever else the words also match
        hits = [Hit(last.id, 1.0)] + [hit for hit in combined.hits if hit.topic != last.id]
        confident = max(combined.confidence, ANSWER_THRESHOLD)
        return Reading(
            Ranking(hits, confident, combined.coverage, combined.known, combined.content), stays=True
        )

    def _subject(
        self, text: str, language: str, current: str | None = None, *, person: bool = False
    ) -> Subject | None:
        """The subject `text` names on its own, read without the words that only ask about the
        conversation's topic (lexicon.subject_words: aspects, words pointing back, follow-up words, and
        with `person` the request for a person): the topics its naming words name (words of the titles
        of at most SUBJECT_MAX_TOPICS topics: "Reisepass", "Kita", "passeport" through the glossary), or
        the topic the rest alone ranks first with at least the answer threshold from at least
        SUBJECT_MIN_WORDS words the base knows. A naming word that also names the `current` topic
        ("driving" after the licence exchange) only counts when no other does ("international").
        None: no subject of its own."""
        rest = " ".join(lexicon.subject_words(text, language, person=person))
        if not rest:
            return None
        named = self.index.named_topics(rest, language, SUBJECT_MAX_TOPICS)
        alone = self.rank(rest, language)
        if alone.top is None:
            return None
        if named:
            own = [topics for topics in named.values() if current not in topics] or list(named.values())
            return Subject(alone, set().union(*own), named=True)
        if alone.confidence >= ANSWER_THRESHOLD and alone.known >= SUBJECT_MIN_WORDS:
            return Subject(alone, {alone.top.topic}, named=False)
        return None

    def _title(self, topic: Topic, language: str) -> str:
        return (
            topic.title.get(language)
            or topic.title.get("en" if language != "de" else "de")
            or topic.title["de"]
        )

    def answer(self, topic: Topic, language: str, aspects: list[str] | None = None) -> Reply:
        """The reply text for `topic` in `language`: the answer, what to bring, fees and the online hint —
        or just the aspects asked about — and the city's address and note. What the citizen's language
        lacks (the whole translation, or a city text given only in German) is shown in German, and the
        reply says so at the top and offers an advisor who speaks the language (escalation GERMAN_ONLY).
        Fees are stated once: a question about the cost gets the fees line (the fuller text) instead of
        the short follow-up as well, and the whole answer leaves out a fees line it already states."""
        lang = language if topic.answer.get(language) else "de"
        # labels in the citizen's language where the lexicon has them: they frame even a German text
        labels = lexicon.LABELS.get(language) or lexicon.LABELS.get(lang) or lexicon.LABELS["de"]
        german: list[str] = []  # the parts shown in German although the answer's language is another

        def pick(part: str, values: dict[str, Any] | None = None, *, fallback: bool = True) -> Any:
            values = getattr(topic, part) if values is None else values
            if values.get(lang) is not None and values[lang] != "":
                return values[lang]  # also an empty list: "nothing to bring" in that language
            if not fallback or not values.get("de"):
                return None
            if lang != "de":
                german.append(part)
            return values["de"]

        def line(label: str, value: Any) -> str:
            return f"{labels.get(label) or lexicon.LABELS['de'][label]}: {value}"

        parts: list[str] = []
        shown = False
        for aspect in aspects or []:
            followup = topic.followups.get(aspect, {})
            if aspect == "cost":
                # the fees line says all the short follow-up says: one of them, in the language if it can
                own = topic.fees.get(lang) or (None if followup.get(lang) else pick("fees"))
                text = line("fees", own) if own else pick("cost", followup)
            else:
                text = pick(aspect, followup, fallback=aspect not in ("documents", "online"))
                if aspect == "documents" and not text:
                    bring = pick("bring")
                    text = line("bring", "; ".join(bring)) if bring else pick(aspect, followup)
                elif aspect == "online" and not text:
                    text = pick("online") or pick(aspect, followup)
            if text:
                parts.append(text)
                shown = True
        if not shown:
            answer = pick("answer")
            parts.append(answer)
            bring = pick("bring")
            if bring:
                parts.append(line("bring", "; ".join(bring)))
            fees = pick("fees")
            amounts = set(AMOUNT.findall(fees or ""))
            if fees and not (amounts and amounts <= set(AMOUNT.findall(answer or ""))):
                parts.append(line("fees", fees))
            elif fees and "fees" in german:
                german.remove("fees")  # left out: not shown in German either
            online = pick("online")
            if online:
                parts.append(line("online", online))
        address = pick("address")
        if address:
            parts.append(line("address", address))
        note = pick("note")
        if note:
            parts.append(line("note", note))
        links = []
        if topic.url:
            parts.append(line("more", topic.url))
            links.append({"title": self._title(topic, lang), "url": topic.url})
        if lang != language:
            german = ["answer"]  # all of it: the note says so
            notice = lexicon.message("german_only", language)
        elif german:
            names = [labels.get(_LABEL_OF.get(p, p)) for p in dict.fromkeys(german)]
            notice = lexicon.message("german_parts", language, parts=", ".join(n for n in names if n) or "…")
        else:
            notice = ""
        if notice:
            parts.insert(0, notice)
        return Reply(
            "\n\n".join(parts),
            language,
            topic=topic.id,
            office=topic.office,
            links=links,
            escalation=GERMAN_ONLY if german and language != "de" else None,
            checked=topic.checked.get(lang) or topic.checked.get("de"),
            german=list(dict.fromkeys(german)),
        )


# the label that names a part shown in German (lexicon LABELS): a follow-up aspect by the part it is about
_LABEL_OF = {"cost": "fees", "documents": "bring", "duration": "duration"}


def _only_aspect(text: str) -> bool:
    """A question about one aspect of a named topic ("Was kostet ein Reisepass?") gets that aspect
    first; a longer description of a situation gets the whole answer."""
    return bool(lexicon.aspects(text)) and len(re.findall(r"\w+", text)) <= 6
