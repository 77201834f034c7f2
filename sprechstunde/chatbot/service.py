"""The chatbot as the app uses it: conversations kept in the store, the knowledge base reloadable
without a restart, imported city pages as a second source.

Conversations are records of kind "chat-conversation" with a TTL of one day: any server process can
continue any conversation, and a restart loses none. `sprechstunde kb reload` validates the files and
then bumps a record; every process notices within `RELOAD_CHECK` seconds and loads the files itself —
on a broken file it logs "<path>:<line>: <problem>" and keeps the old knowledge base.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sprechstunde.chatbot import lexicon
from sprechstunde.chatbot.engine import ANSWER_THRESHOLD, Engine, Reply, State
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
CONVERSATION_TTL = 24 * 3600
RELOAD_KIND = "chatbot-kb"
RELOAD_KEY = "reload"
RELOAD_CHECK = 2.0  # seconds between looks at the reload and page-version records
MAX_MESSAGES = 60  # kept per conversation (the advisor sees the latest)
MAX_MESSAGE_CHARS = 1000
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
    ) -> None:
        self._store = store
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
        if reply.kind in ("out_of_scope", "unsure") and len(self.pages):
            page_reply = self.page_answer(text, reply.language)
            if page_reply is not None:
                reply = page_reply
        messages = conversation.messages + [
            {"role": "citizen", "text": text[:MAX_MESSAGE_CHARS]},
            {"role": "bot", "text": reply.text[:MAX_MESSAGE_CHARS]},
        ]
        record = {"state": state.as_json(), "messages": messages[-MAX_MESSAGES:], "updated": time.time()}
        await self._store.put(CONVERSATION_KIND, conversation.conversation_id, record, ttl=CONVERSATION_TTL)
        return conversation.conversation_id, reply

    def page_answer(self, text: str, language: str) -> Reply | None:
        """An answer quoting the city's own page, when one matches well enough."""
        languages = {language, "de"}
        hits = self.pages.search(text, language, limit=1, languages=languages)
        if not hits or hits[0].confidence < PAGE_THRESHOLD or not hits[0].quotes:
            return None
        hit = hits[0]
        lang = "en" if language == "en" else "de"
        intro = lexicon.message("page_intro", lang, title=hit.page["title"])
        quoted = "\n".join(f"„{q}“" if lang == "de" else f"“{q}”" for q in hit.quotes)
        more = lexicon.LABELS[lang]["more"]
        return Reply(
            f"{intro}\n{quoted}\n\n{more}: {hit.page['url']}",
            language,
            topic=None,
            confidence=max(hit.confidence, ANSWER_THRESHOLD),
            kind="page",
            links=[{"title": hit.page["title"], "url": hit.page["url"]}],
        )

    async def transcript(self, conversation_id: str) -> list[dict[str, str]] | None:
        """The conversation as the queue accepts it (latest messages, within rooms.intake's size limits)."""
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


def valid_conversation_id(value: Any) -> bool:
    return isinstance(value, str) and bool(CONVERSATION_ID.match(value))
