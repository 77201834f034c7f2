"""What a caller hears and chooses: language (DTMF 1–8), office, then the queue — or, outside service
hours, when the office opens and a call-back ticket if they consent.

Inside hours the caller joins the same queue as video citizens (`QueueService.enqueue`, channel "phone",
office, language, arrival time). While they wait they hear their position and estimate (the queue's own
`status`, rooms/estimate.py) every `announce_every` seconds, hold music or silence in between. Hanging
up while waiting leaves the queue as abandoned, exactly like a closed waiting page. When an advisor
claims the entry ("Nächste Person"), `connect` bridges the call into the consultation room.

Logs carry the masked number only (`PhoneCall.masked`); the full number goes into a call-back ticket,
and only after the caller pressed 1 to consent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sprechstunde.l10n import day_text, time_text
from sprechstunde.phone.prompts import PromptError, Prompts
from sprechstunde.phone.sip import FRAME_BYTES, RATE, PhoneCall
from sprechstunde.rooms import hours
from sprechstunde.rooms.consultations import PHONE
from sprechstunde.rooms.entries import QueueEntry
from sprechstunde.rooms.errors import QueueError
from sprechstunde.rooms.offices import Office, OfficeDirectory
from sprechstunde.rooms.queue import QueueService

log = logging.getLogger(__name__)

# DTMF 1–8, in the order the issue and the language switcher use
LANGUAGES = ("de", "en", "fr", "it", "pl", "tr", "ku", "ar")
DIGITS = "123456789"
ATTEMPTS = 3  # a menu is offered this often before the call ends
AFTER_PROMPT = 6.0  # seconds to press a key once the menu has been read
CALLBACK_SOURCE = "callback"

Connect = Callable[[PhoneCall, QueueEntry], Awaitable[bool]]
"""Bridges a claimed caller into the consultation room until the call or the room ends: True once the
caller was in the room, False when joining it failed (the IVR tries again)."""
Pin = Callable[[QueueEntry], Awaitable[None]]
"""Pins a claimed caller's room to this node (several nodes), before the advisor's browser arrives."""


@dataclass(frozen=True)
class IvrSettings:
    announce_every: float = 45.0  # seconds between position announcements (30–60)
    hold_music: bytes | None = None  # 8 kHz PCM looped while waiting; None: silence


def spell(reference: str) -> str:
    """A ticket reference read character by character: 'SP-2026-000123' → 'S P, 2 0 2 6, 0 0 0 1 2 3'."""
    return ", ".join(" ".join(part) for part in reference.split("-"))


class PhoneLine:
    """The IVR and the waiting line of every call (`handle` is the SIP endpoint's call handler)."""

    def __init__(
        self,
        queue: QueueService,
        offices: OfficeDirectory,
        prompts: Prompts,
        settings: IvrSettings | None = None,
        connect: Connect | None = None,
        clock: Callable[[], float] = time.time,
        pin: Pin | None = None,
    ) -> None:
        self.queue = queue
        self.offices = offices
        self.prompts = prompts
        self.settings = settings or IvrSettings()
        self.connect = connect
        self.pin = pin
        self._clock = clock
        self._change = asyncio.Event()
        self.waiting: dict[str, PhoneCall] = {}  # entry id → the call holding that place
        queue.listen(self._queue_changed)

    async def _queue_changed(self) -> None:
        self._change.set()
        self._change = asyncio.Event()

    def languages(self) -> tuple[str, ...]:
        """The languages offered (those at least one office serves), in DTMF order."""
        served = {code for office in self.offices for code in office.languages}
        return tuple(code for code in LANGUAGES if code in served)

    def offices_for(self, lang: str) -> list[Office]:
        """The offices a caller of `lang` can choose, one digit each (at most nine)."""
        return [office for office in self.offices if lang in office.languages][: len(DIGITS)]

    def fixed_prompts(self) -> list[tuple[str, str]]:
        """Every prompt without a number in it, for `Prompts.warm` at start-up."""
        texts = [("de", self.prompts.text("de", "phone.welcome"))]
        for index, lang in enumerate(self.languages()):
            texts.append((lang, self.prompts.text(lang, "phone.language_choice", digit=index + 1)))
        for lang in self.languages():
            texts.append((lang, self.prompts.text(lang, "phone.office_intro")))
            for index, office in enumerate(self.offices_for(lang)):
                text = self.prompts.text(
                    lang, "phone.office_choice", office=office.name(lang), digit=index + 1
                )
                texts.append((lang, text))
            for key in ("phone.invalid", "phone.queued", "phone.connecting", "phone.estimate.soon"):
                texts.append((lang, self.prompts.text(lang, key)))
        return texts

    # --- the call ------------------------------------------------------------------------------

    async def handle(self, call: PhoneCall) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(call.media_ready.wait(), 5)
        lang = await self._choose_language(call)
        if lang is None:
            return
        office = await self._choose_office(call, lang)
        if office is None:
            return
        now = datetime.fromtimestamp(self._clock(), UTC)
        if not hours.is_open(office, now):
            await self._after_hours(call, office, lang, now)
            return
        try:
            joined = await self.queue.enqueue(
                office.id, lang, self.prompts.text("de", "console.phone.topic"), channel=PHONE
            )
        except QueueError as exc:
            log.info("call %s not queued: %s", call.masked, exc.code)
            await self._say_and_wait(call, lang, "phone.closed_long", office=office.name(lang))
            return
        entry = joined.entry
        log.info("call %s waits as %s (%s, %s)", call.masked, entry.entry_id, office.id, lang)
        self.waiting[entry.entry_id] = call
        try:
            await self._wait(call, entry, lang)
        finally:
            self.waiting.pop(entry.entry_id, None)
            if call.ended.is_set():
                # hung up while waiting: abandoned, as a closed waiting page (no-op once claimed)
                if await self.queue.leave(entry.entry_id):
                    log.info("call %s hung up while waiting: %s abandoned", call.masked, entry.entry_id)

    async def _choose_language(self, call: PhoneCall) -> str | None:
        languages = self.languages()
        if len(languages) == 1:
            return languages[0]
        parts = [await self.prompts.say("de", "phone.welcome")]
        for index, lang in enumerate(languages):
            parts.append(await self.prompts.say(lang, "phone.language_choice", digit=index + 1))
        digit = await self._menu(call, "de", parts, {DIGITS[i] for i in range(len(languages))})
        return None if digit is None else languages[DIGITS.index(digit)]

    async def _choose_office(self, call: PhoneCall, lang: str) -> Office | None:
        offices = self.offices_for(lang)
        if not offices:
            await self._say_and_wait(call, lang, "phone.no_office")
            return None
        if len(offices) == 1:
            return offices[0]
        parts = [await self.prompts.say(lang, "phone.office_intro")]
        for index, office in enumerate(offices):
            parts.append(
                await self.prompts.say(lang, "phone.office_choice", office=office.name(lang), digit=index + 1)
            )
        digit = await self._menu(call, lang, parts, {DIGITS[i] for i in range(len(offices))})
        return None if digit is None else offices[DIGITS.index(digit)]

    async def _menu(self, call: PhoneCall, lang: str, parts: list[bytes], valid: set[str]) -> str | None:
        """Read the menu (a key pressed meanwhile cuts it short) and return the valid digit pressed;
        None after ATTEMPTS tries without one, or when the caller hung up."""
        for _ in range(ATTEMPTS):
            menu = b"".join(parts)
            call.play(menu)
            digit = await self._digit(call, len(menu) / (2 * RATE) + AFTER_PROMPT)
            call.interrupt()
            if call.ended.is_set():
                return None
            if digit in valid:
                return digit
            call.play(await self.prompts.say(lang, "phone.invalid" if digit else "phone.no_input"))
            if not digit:
                await call.drained()
                return None
        await self._say_and_wait(call, lang, "phone.goodbye")
        return None

    async def _digit(self, call: PhoneCall, timeout: float) -> str | None:
        try:
            return await asyncio.wait_for(call.digits.get(), timeout) or None
        except TimeoutError:
            return None

    async def _say_and_wait(self, call: PhoneCall, lang: str, key: str, **values: object) -> None:
        call.play(await self.prompts.say(lang, key, **values))
        await call.drained()

    # --- outside service hours -----------------------------------------------------------------

    async def _after_hours(self, call: PhoneCall, office: Office, lang: str, now: datetime) -> None:
        opening = hours.next_opening(office, now)
        if opening is None:
            call.play(await self.prompts.say(lang, "phone.closed_long", office=office.name(lang)))
        else:
            when = f"{day_text(opening.date(), lang)}, {time_text(opening, lang)}"
            call.play(await self.prompts.say(lang, "phone.closed", office=office.name(lang), when=when))
        if not call.number:
            call.play(await self.prompts.say(lang, "phone.callback_anonymous"))
            await call.drained()
            return
        digit = await self._menu(call, lang, [await self.prompts.say(lang, "phone.callback_offer")], {"1"})
        if digit != "1":
            return
        ticket = await self.queue.tickets.open(
            office.id,
            self.prompts.text("de", "console.phone.callback_notes"),
            language=lang,
            topic=self.prompts.text("de", "console.phone.topic"),
            source=CALLBACK_SOURCE,
            contact=call.number,
        )
        log.info("call %s left call-back ticket %s (%s)", call.masked, ticket.reference, office.id)
        await self._say_and_wait(call, lang, "phone.callback_done", reference=spell(ticket.reference))

    # --- waiting -------------------------------------------------------------------------------

    async def _wait(self, call: PhoneCall, entry: QueueEntry, lang: str) -> None:
        call.play(await self.prompts.say(lang, "phone.queued"))
        next_announcement = 0.0
        music_at = 0
        announced: str | None = None  # the room the caller was told they are being connected to
        while not call.ended.is_set():
            current = await self.queue.get(entry.entry_id)
            if current is None or current.state not in ("waiting", "called"):
                return
            if current.state == "called" and current.room_id:
                if self.pin is not None:  # at once: the advisor's browser is on its way to the room
                    await self.pin(current)
                if announced != current.room_id:
                    # said once per room: a join that failed is tried again without saying it again
                    call.interrupt()
                    await self._say_and_wait(call, lang, "phone.connecting")
                    announced = current.room_id
                if self.connect is not None and not call.ended.is_set():
                    if await self.connect(call, current):
                        announced = None  # back in line or in the room again: that is said anew
                else:
                    await call.ended.wait()
                if call.ended.is_set():
                    return
                continue  # handed over to another office: waits again
            now = time.monotonic()
            if now >= next_announcement and not call.outbound:
                await self._announce(call, entry.entry_id, lang)
                next_announcement = now + self.settings.announce_every
            music = self.settings.hold_music
            if music and len(call.outbound) < 10:
                chunk = music[music_at : music_at + 50 * FRAME_BYTES]
                music_at = (music_at + len(chunk)) % len(music)
                call.play(chunk)
            change = self._change
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(first_done(change.wait(), call.ended.wait()), 0.5)

    async def _announce(self, call: PhoneCall, entry_id: str, lang: str) -> None:
        try:
            status = await self.queue.status(entry_id)
        except QueueError:
            return
        if status.state != "waiting" or status.position is None:
            return
        try:
            parts = [await self.prompts.say(lang, "phone.position", position=status.position)]
            if status.advisor_free:
                parts.append(await self.prompts.say(lang, "phone.estimate.soon"))
            elif status.estimated_wait is None:
                parts.append(await self.prompts.say(lang, "phone.estimate.none"))
            else:
                minutes = max(1, math.ceil(status.estimated_wait / 60))
                key = "phone.estimate.one" if minutes == 1 else "phone.estimate.minutes"
                parts.append(await self.prompts.say(lang, key, minutes=minutes))
        except PromptError as exc:
            # the place in line matters more than hearing it: the caller waits on, the next announcement
            # tries again
            log.warning("call %s: position not announced: %s", call.masked, exc)
            return
        call.interrupt()  # the announcement replaces the hold music queued
        call.play(b"".join(parts))


async def first_done(*waits: Awaitable[object]) -> None:
    """Wait until the first of `waits` finishes; the others are cancelled and awaited (the IVR's and the
    bridge's "hang-up or …" waits)."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
