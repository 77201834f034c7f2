"""Spoken prompts (phone/prompts.py) rendered by espeak-ng: with `serve --workers N` every process renders
the same announcement ("Sie sind an Position 1 …") into the same cache directory at the same moment, and
a waiting caller must neither get a half-written file nor lose the call when an announcement cannot be
rendered (found by bench/phone.py with 20 callers on 5 processes: a caller was hung up)."""

from __future__ import annotations

import asyncio
import shutil
from types import SimpleNamespace

import pytest

from sprechstunde.phone.ivr import PhoneLine
from sprechstunde.phone.prompts import PromptError, Prompts
from sprechstunde.phone.sip import PhoneCall

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng (./run test)")


async def test_processes_rendering_one_prompt_at_once_each_get_it_whole(tmp_path):
    # one Prompts per process; they share nothing but the directory
    renderers = [Prompts(tmp_path) for _ in range(6)]
    texts = [f"Sie sind an Position {n}. Die Wartezeit beträgt etwa {n} Minuten." for n in (1, 2)]
    for text in texts:
        spoken = await asyncio.gather(*(r.speak("de", text) for r in renderers for _ in range(2)))
        assert spoken[0] and all(pcm == spoken[0] for pcm in spoken)
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".wav", ".wav"]  # no drafts left behind


async def test_a_cache_file_that_does_not_decode_is_rendered_again(tmp_path):
    text = "Sie sind an Position 3."
    expected = await Prompts(tmp_path / "fresh").speak("de", text)
    assert await Prompts(tmp_path / "fresh").speak("de", text) == expected  # rendered = read from the cache
    prompts = Prompts(tmp_path / "cache")
    await prompts.speak("de", text)
    [cached] = (tmp_path / "cache").iterdir()
    cached.write_bytes(b"RIFF\x00\x00not a wave at all")  # a damaged disk, or a hand-made file
    again = Prompts(tmp_path / "cache")  # a new process: nothing in memory
    assert await again.speak("de", text) == expected
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [cached.name]  # replaced, no drafts


class FailingPrompts(Prompts):
    async def speak(self, lang: str, text: str) -> bytes:
        raise PromptError("espeak-ng -v de failed: no voice")


async def test_an_announcement_that_cannot_be_rendered_leaves_the_caller_waiting(tmp_path):
    status = SimpleNamespace(state="waiting", position=2, advisor_free=False, estimated_wait=300)

    async def queue_status(entry_id: str) -> SimpleNamespace:
        return status

    queue = SimpleNamespace(status=queue_status, listen=lambda callback: None)
    line = PhoneLine(queue, None, FailingPrompts(tmp_path))  # type: ignore[arg-type]
    call = PhoneCall(None, 1, "+4921511234567", "127.0.0.1")  # type: ignore[arg-type]  # no SIP here
    await line._announce(call, "entry-1", "de")  # no exception: the caller keeps waiting
    assert not call.outbound  # nothing half-said; the hold music or silence goes on
