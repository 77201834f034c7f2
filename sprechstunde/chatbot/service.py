"""The chatbot as the app uses it: conversations kept in the store, the knowledge base reloadable
without a restart, imported city pages as a second source.

Conversations are records of kind "chat-conversation" that expire `retention_days` (default 30,
--chat-retention-days) after their last message — and no later: the store's TTL deletes them. Any
server process can continue any conversation, and a restart loses none. `sprechstunde kb reload`
validates the files and then bumps a record; every process notices within `RELOAD_CHECK` seconds and
loads the files itself — on a broken file it logs "<path>:<line>: <problem>" and keeps the old knowledge base.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sprechstunde.chatbot import lexicon
from sprechstunde.chatbot.engine import ANSWER_THRESHOLD, GERMAN_ONLY, PERSON, Engine, Reply, State
from sprechstunde.chatbot.knowledge import (
    KNOWLEDGE_DIR,
    CityOverrides,
    KnowledgeError,
    apply_city,
    load_city,
    load_knowledge,
)
from sprechstunde.chatbot.pages import PAGE_KIND, VERSION_KEY, VERSION_KIND, PageIndex, page_key
from sprechstunde.rooms.text import strip_bidi
from sprechstunde.store.port import Store

log = logging.getLogger(__name__)

CONVERSATION_KIND = "chat-conversation"
RETENTION_DAYS = 30.0  # a conversation is deleted this many days after its last message
CONVERSATION_TTL = RETENTION_DAYS * 86400
RELOAD_KIND = "chatbot-kb"
RELOAD_KEY = "reload"
RELOAD_CHECK = 2.0  # seconds between looks at the reload and page-version records
MAX_MESSAGES = 60  # kept per conversation (the advisor sees the latest)
MAX_MESSAGE_CHARS = 1000  # a citizen's message (the API refuses longer ones anyway)
# A bot reply is kept whole (the advisor and the download see what the citizen saw); only a reply beyond
# this is cut, at a paragraph or sentence end.
MAX_REPLY_CHARS = 8000
CONVERSATION_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
PAGE_THRESHOLD = 0.5
# what the queue accepts as a transcript (rooms.intake.check_transcript)
TRANSCRIPT_MESSAGES = 200
TRANSCRIPT_CHARS = 20_000


@dataclass(frozen=True)
class Conversation:
    conversation_id: str
    state: State
    messages: list[dict[str, str]]


class ChatService:
    def __init__(
        self,
        store: Store,
        knowledge_dir: Path | str = KNOWLEDGE_DIR,
        city_path: Path | str | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        retention_days: float = RETENTION_DAYS,
    ) -> None:
        if not retention_days > 0:
            raise ValueError("the chat retention must be a positive number of days")
        self._store = store
        self.retention_days = retention_days
        self.conversation_ttl = retention_days * 86400
        self.knowledge_dir = Path(knowledge_dir)
        self.city_path = city_path
        self._clock = clock
        self.city: CityOverrides = load_city(city_path)  # an operator's mistake stops start-up
        # Built on first use (about 0.3 s for 44 topics, off the event loop): an app that never chats
        # — most test apps — never pays for it.
        self._engine: Engine | None = None
        self.pages = PageIndex([])
        self._pages_version: Any = None
        self._reload_token: Any = None
        self._checked = float("-inf")
        self._lock = asyncio.Lock()

    # --- knowledge base ---------------------------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("call `await ChatService.ready()` first")
        return self._engine

    async def ready(self) -> Engine:
        """The engine, built at the first call: start-up serves what loads, broken files are logged
        (and a reload refuses until they are fixed)."""
        if self._engine is None:
            async with self._lock:
                if self._engine is None:
                    self._engine = await asyncio.to_thread(self._initial)
        return self._engine

    def _initial(self) -> Engine:
        base = load_knowledge(self.knowledge_dir, strict=False)
        for problem in base.problems:
            log.error("knowledge base: %s", problem)
        return Engine(apply_city(base, self.city))

    def load(self) -> Engine:
        """A new engine from the files (strict: KnowledgeError lists every problem)."""
        city = load_city(self.city_path)
        return Engine(apply_city(load_knowledge(self.knowledge_dir, strict=True), city))

    async def reload(self) -> int:
        """Reload the files; the old knowledge base stays in service when any file is broken."""
        engine = await asyncio.to_thread(self.load)
        self._engine = engine
        log.info("knowledge base reloaded: %d topics", len(engine.base))
        return len(engine.base)

    async def request_reload(self) -> None:
        """Tell every process (through the store) to reload; called by `sprechstunde kb reload`."""
        await self._store.put(RELOAD_KIND, RELOAD_KEY, {"token": secrets.token_hex(8), "at": time.time()})

    async def refresh(self, *, force: bool = False) -> None:
        """Pick up a requested reload or newly imported pages (at most every RELOAD_CHECK seconds)."""
        now = self._clock()
        if not force and now - self._checked < RELOAD_CHECK:
            return
        async with self._lock:
            if not force and now - self._checked < RELOAD_CHECK:
                return
            self._checked = now
            marker = await self._store.get(RELOAD_KIND, RELOAD_KEY)
            token = marker.get("token") if marker else None
            if self._reload_token is None:
                self._reload_token = token or ""
            elif token and token != self._reload_token:
                self._reload_token = token
                try:
                    await self.reload()
                except KnowledgeError as exc:
                    for problem in exc.problems:
                        log.error("knowledge base reload refused, old one kept: %s", problem)
            version = await self._store.get(VERSION_KIND, VERSION_KEY)
            if (version or {}).get("token") != self._pages_version:
                self._pages_version = (version or {}).get("token")
                records = [record for _, record in await self._store.scan(PAGE_KIND)]
                self.pages = await asyncio.to_thread(PageIndex, records)

    async def import_pages(self, records: list[dict[str, Any]], source: str) -> int:
        """Replace the pages of `source` by `records` and tell every process to rebuild its index."""
        keep = {page_key(record) for record in records}
        for key, _ in await self._store.scan(PAGE_KIND, f"{source}:"):
            if key not in keep:
                await self._store.delete(PAGE_KIND, key)
        for record in records:
            await self._store.put(PAGE_KIND, page_key(record), record)
        await self._store.put(VERSION_KIND, VERSION_KEY, {"token": secrets.token_hex(8), "at": time.time()})
        return len(records)

    # --- conversations ----------------------------------------------------------------------------------

    async def stored(self, conversation_id: str) -> Conversation | None:
        """The stored conversation, None when the id is unknown or the conversation expired."""
        record = await self._store.get(CONVERSATION_KIND, conversation_id)
        if record is None:
            return None
        return Conversation(conversation_id, State.from_json(record.get("state")), record.get("messages", []))

    async def conversation(self, conversation_id: str | None) -> Conversation:
        """The stored conversation, or a fresh one (also when the id is unknown or expired)."""
        if conversation_id is not None:
            record = await self._store.get(CONVERSATION_KIND, conversation_id)
            if record is not None:
                return Conversation(
                    conversation_id, State.from_json(record.get("state")), record.get("messages", [])
                )
        return Conversation(secrets.token_urlsafe(18), State(), [])

    async def message(
        self, text: str, conversation_id: str | None = None, language: str | None = None
    ) -> tuple[str, Reply]:
        """Answer one citizen message; returns the conversation id (new if none was given) and the reply."""
        text = strip_bidi(text)  # issue 15, finding 13: no direction overrides in the transcript
        engine = await self.ready()
        await self.refresh()
        conversation = await self.conversation(conversation_id)
        reply, state = engine.respond(text, conversation.state, language)
        reply, state = on_current_topic(engine, text, reply, conversation.state, state)
        if reply.kind in ("out_of_scope", "unsure") and len(self.pages):
            page_reply = self.page_answer(text, reply.language)
            if page_reply is not None:
                reply = page_reply
        messages = conversation.messages + [
            {"role": "citizen", "text": text[:MAX_MESSAGE_CHARS]},
            {"role": "bot", "text": whole_sentences(reply.text, MAX_REPLY_CHARS)},
        ]
        record = {"state": state.as_json(), "messages": messages[-MAX_MESSAGES:], "updated": time.time()}
        await self._store.put(
            CONVERSATION_KIND, conversation.conversation_id, record, ttl=self.conversation_ttl
        )
        return conversation.conversation_id, reply

    def page_answer(self, text: str, language: str) -> Reply | None:
        """An answer quoting the city's own page, when one matches well enough."""
        languages = {language, "de"}
        hits = self.pages.search(text, language, limit=1, languages=languages)
        if not hits or hits[0].confidence < PAGE_THRESHOLD or not hits[0].quotes:
            return None
        hit = hits[0]
        # the page is quoted as written, in its own language; the frame is in the citizen's. A German page
        # for a citizen writing another language says so and offers an advisor who speaks theirs.
        page_lang = hit.page.get("language") or "de"
        intro = lexicon.message("page_intro", language, title=hit.page["title"])
        quoted = "\n".join(f"„{q}“" if page_lang == "de" else f"“{q}”" for q in hit.quotes)
        more = (lexicon.LABELS.get(language) or lexicon.LABELS["de"])["more"]
        german = page_lang != language
        note = lexicon.message("german_only", language) if german else ""
        text = f"{intro}\n{quoted}\n\n{more}: {hit.page['url']}"
        return Reply(
            f"{note}\n\n{text}" if note else text,
            language,
            topic=None,
            confidence=max(hit.confidence, ANSWER_THRESHOLD),
            escalation=GERMAN_ONLY if german else None,
            kind="page",
            links=[{"title": hit.page["title"], "url": hit.page["url"]}],
            german=["answer"] if german else [],
        )

    async def transcript(self, conversation_id: str) -> list[dict[str, str]] | None:
        """The conversation as the queue accepts it, within rooms.intake's size limits: whole messages
        only — the oldest are left out first, none is cut (an advisor must not read half an answer)."""
        record = await self._store.get(CONVERSATION_KIND, conversation_id)
        if record is None:
            return None
        kept: list[dict[str, str]] = []
        total = 0
        for message in reversed(record.get("messages", [])[-TRANSCRIPT_MESSAGES:]):
            text = str(message.get("text", ""))
            if total + len(text) > TRANSCRIPT_CHARS:
                break
            total += len(text)
            kept.append(
                {"role": message.get("role") if message.get("role") == "bot" else "citizen", "text": text}
            )
        return list(reversed(kept))

    async def state(self, conversation_id: str) -> State | None:
        record = await self._store.get(CONVERSATION_KIND, conversation_id)
        return State.from_json(record.get("state")) if record else None


def on_current_topic(
    engine: Engine, text: str, reply: Reply, before: State, after: State
) -> tuple[Reply, State]:
    """A request for a person is about the conversation's current topic: after a VHS question
    "Ich möchte mit einer Person sprechen" goes to the VHS, not to whatever topic the words "Person" and
    "sprechen" match best. A message that names a topic itself ("… über meinen Kita-Platz") goes to that
    topic, which then is the conversation's topic (the hand-over reads it from the state)."""
    if reply.escalation != PERSON:
        return reply, after
    current = engine.base.get(before.last_topic) or engine.base.get(before.candidate)
    named = [
        word
        for word in engine.index.specific_words(text, reply.language, max_topics=max(1, len(engine.base)))
        if not lexicon.asks_for_person(word)  # "Berater" names no topic
    ]
    if named and reply.topic is not None:
        return reply, replace(after, last_topic=reply.topic, candidate=None)
    if current is None or current.id == reply.topic:
        return reply, after
    return replace(reply, topic=current.id, office=current.office), after


def whole_sentences(text: str, limit: int) -> str:
    """`text`, or when longer than `limit` its beginning up to the last paragraph or sentence end that
    fits, with "…" — never half a word or sentence."""
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    cut = max(head.rfind("\n\n"), *(head.rfind(mark) + 1 for mark in (". ", "! ", "? ", "。", "؟ ")))
    return (head[:cut] if cut > limit // 2 else head.rsplit(" ", 1)[0]).rstrip() + " …"


def valid_conversation_id(value: Any) -> bool:
    return isinstance(value, str) and bool(CONVERSATION_ID.match(value))
