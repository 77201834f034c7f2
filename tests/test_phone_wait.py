"""What a claimed caller hears while the bridge takes them into the room: "Sie werden jetzt verbunden"
once per room, not again at every try when joining fails (it was said every two seconds for as long
as the join kept failing), and anew when they were in the room and come to it again."""

from __future__ import annotations

import asyncio
import contextlib
from types import SimpleNamespace

from sprechstunde.phone.ivr import PhoneLine
from sprechstunde.phone.prompts import Prompts
from sprechstunde.phone.sip import FRAME_BYTES, PhoneCall


class SaidPrompts(Prompts):
    """Notes which catalog texts were said; each is one frame of silence (no espeak-ng needed)."""

    def __init__(self, directory) -> None:
        super().__init__(directory)
        self.said: list[str] = []

    async def say(self, lang: str, key: str, **values: object) -> bytes:
        self.said.append(key)
        return bytes(FRAME_BYTES)


async def play_out(call: PhoneCall) -> None:
    """The media clock's part: takes the queued frames off, as PJSIP's sends would."""
    while True:
        if call.outbound:
            call.outbound.popleft()
        await asyncio.sleep(0.001)


async def wait_with(tmp_path, tries: list[tuple[str, bool]]) -> list[str]:
    """The caller's wait while the queue says they are called into each try's room and the bridge
    answers whether they got in; the caller hangs up after the last try. Returns what was said."""
    pending = list(tries)
    current = SimpleNamespace(entry_id="e-1", state="called", room_id=pending[0][0])
    prompts = SaidPrompts(tmp_path)
    call = PhoneCall(None, 1, "+4921511234567", "127.0.0.1")  # type: ignore[arg-type]  # no SIP here

    async def get(entry_id: str) -> SimpleNamespace:
        return current

    async def connect(call: PhoneCall, entry: SimpleNamespace) -> bool:
        room, joined = pending.pop(0)
        assert entry.room_id == room
        if pending:
            current.room_id = pending[0][0]  # the next try: the same room again, or a new one
        else:
            call.ended.set()  # the caller hangs up
        return joined

    queue = SimpleNamespace(get=get, listen=lambda callback: None)
    line = PhoneLine(queue, None, prompts, connect=connect)  # type: ignore[arg-type]
    clock = asyncio.ensure_future(play_out(call))
    try:
        await asyncio.wait_for(line._wait(call, current, "de"), 10)  # type: ignore[arg-type]
    finally:
        clock.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await clock
    assert not pending
    return prompts.said


async def test_a_join_that_keeps_failing_is_announced_once(tmp_path):
    said = await wait_with(tmp_path, [("room-a", False)] * 5)
    assert said == ["phone.queued", "phone.connecting"]


async def test_a_new_room_or_a_second_time_in_the_room_is_announced_again(tmp_path):
    tries = [("room-a", False), ("room-a", True), ("room-a", False), ("room-b", False), ("room-b", True)]
    said = await wait_with(tmp_path, tries)
    # room a: said before the first try, not before the second; the caller was in, then comes again
    # (said); room b (handed over): said once more
    assert said == ["phone.queued", "phone.connecting", "phone.connecting", "phone.connecting"]
