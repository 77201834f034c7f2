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
from sprechstunde.chatbot.retrieval import Ranking, TopicIndex
from sprechstunde.chatbot.text import STOPWORDS, words

ANSWER_THRESHOLD = 0.5  # confidence from which the bot answers with a topic
REFUSE_BELOW = 0.2  # below this (or with an out-of-scope subject) the bot says it is not responsible
UNHELPFUL_LIMIT = 2  # "after two unhelpful answers" the bot offers a person
FOLLOWUP_MAX_WORDS = 5
MAX_TEXT = 1000

# person requested / two unhelpful answers / the bot is unsure
PERSON, UNHELPFUL, LOW_CONFIDENCE = "person_requested", "unhelpful_answers", "low_confidence"
# an answer (or parts of it) shown in German to a citizen who writes another language: the reply says so
# and offers an advisor who speaks the citizen's language
GERMAN_ONLY = "german_only"
# an amount of money in a text ("70 €", "37,50 €", "€96"): a fees line whose amounts the answer already
# states all of is left out of the whole answer
AMOUNT = re.compile(r"\d+(?:[.,]\d+)?\s?€|€\s?\d+(?:[.,]\d+)?")
# words pointing back at the conversation's topic ("Was kostet das?"): chatbot/data/lexicon.yaml
ANAPHORA = lexicon.ANAPHORA


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
            topic = top if ranking.confidence >= ANSWER_THRESHOLD else None
            topic = topic or self.base.get(state.last_topic) or self.base.get(state.candidate)
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

        followup = self._followup(text, language, state, ranking)
        if followup is not None:
            ranking, aspects = followup
            top = self.base.get(ranking.top.topic) if ranking.top else None
        else:
            aspects = lexicon.aspects(text)

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

    def _followup(
        self, text: str, language: str, state: State, ranking: Ranking
    ) -> tuple[Ranking, list[str]] | None:
        """("Und was kostet das?") The message continues the conversation's topic: the ranking of the
        message read together with that topic's title, and the aspects asked about; None otherwise."""
        last = self.base.get(state.last_topic) or self.base.get(state.candidate)
        if last is None:
            return None
        tokens = words(text)
        stop = STOPWORDS.get(language, frozenset()) | STOPWORDS["de"]
        if len(tokens) > 4 * FOLLOWUP_MAX_WORDS:
            return None  # a whole new question, not a follow-up
        aspect_words = lexicon.aspect_words(text)
        content = [w for w in tokens if w not in stop and w not in aspect_words]
        aspects = lexicon.aspects(text)
        short = len(content) <= FOLLOWUP_MAX_WORDS
        pointing = any(w in ANAPHORA for w in tokens) or lexicon.continues(text)
        if not short or not (aspects or pointing or len(content) <= 2):
            return None
        rest = " ".join(content)
        if rest and self.index.specific_words(rest, language):
            # the message names a topic by itself ("was kostet ein Reisepass?"): the same topic read
            # with the conversation's title, otherwise no follow-up
            alone = self.rank(rest, language)
            if alone.top is not None and alone.top.topic != last.id and alone.confidence >= ANSWER_THRESHOLD:
                return None
        context = f"{self._title(last, 'de')} {self._title(last, language)} {text}"
        combined = self.rank(context, language)
        if not combined.hits:
            return None
        if combined.top.topic != last.id and combined.confidence < ANSWER_THRESHOLD:
            return None
        return Ranking(
            combined.hits,
            max(combined.confidence, ANSWER_THRESHOLD),
            combined.coverage,
            combined.known,
            combined.content,
        ), aspects

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
