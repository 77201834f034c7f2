"""The phone line as one object the app starts and stops: SIP endpoint + IVR + prompts."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

from sprechstunde.phone.ivr import Connect, IvrSettings, PhoneLine, Pin
from sprechstunde.phone.prompts import Prompts, read_pcm
from sprechstunde.phone.sip import SipEndpoint, SipSettings
from sprechstunde.rooms.offices import OfficeDirectory
from sprechstunde.rooms.queue import QueueService
from sprechstunde.strings import Catalog

log = logging.getLogger(__name__)
PROMPT_DIR = "phone-prompts"


class PhoneService:
    def __init__(
        self,
        sip: SipSettings,
        queue: QueueService,
        offices: OfficeDirectory,
        data_dir: Path,
        *,
        announce_every: float = 45.0,
        hold_music: Path | None = None,
        connect: Connect | None = None,
        pin: Pin | None = None,
        catalog: Catalog | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.prompts = Prompts(data_dir / PROMPT_DIR, catalog)
        music = read_pcm(hold_music) if hold_music else None
        settings = IvrSettings(announce_every, music)
        self.line = PhoneLine(queue, offices, self.prompts, settings, connect=connect, clock=clock, pin=pin)
        self.endpoint = SipEndpoint(sip, self.line.handle)
        self._warm: asyncio.Task | None = None

    async def start(self) -> None:
        await self.endpoint.start()
        # the fixed prompts of every language, rendered in the background (a first call renders its own)
        self._warm = asyncio.ensure_future(self.prompts.warm(self.line.fixed_prompts()))
        log.info(
            "SIP endpoint listening on %s:%d %s",
            self.endpoint.settings.host,
            self.endpoint.settings.port,
            sorted(self.endpoint.ports),
        )

    async def close(self) -> None:
        if self._warm is not None:
            self._warm.cancel()
        await self.endpoint.stop()
