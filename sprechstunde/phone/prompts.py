"""Spoken prompts: the catalog's texts (sprechstunde/locales/<lang>/phone.toml) read by espeak-ng (Debian),
resampled to 8 kHz for the telephone and cached in the data directory by a hash of voice and text.

A changed text is a new file, so the cache never serves a stale prompt; the fixed prompts of every language
are rendered at start-up (`warm`), the ones with a number in them (position, minutes, a ticket reference)
when first needed. Rendering runs in a subprocess and resampling in a worker thread: a call waiting for its
prompt never stalls another.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import secrets
import shutil
import wave
from collections.abc import Iterable
from pathlib import Path

import av

from sprechstunde.phone.sip import RATE
from sprechstunde.strings import Catalog

log = logging.getLogger(__name__)

# espeak-ng's voice for each catalog language (all eight ship with Debian's espeak-ng-data)
VOICES = {
    "de": "de",
    "en": "en-gb",
    "fr": "fr-fr",
    "it": "it",
    "pl": "pl",
    "tr": "tr",
    "ku": "ku",
    "ar": "ar",
}
SPEED = 150  # words per minute: a little slower than espeak's 175, for the telephone


class PromptError(RuntimeError):
    pass


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def read_pcm(path: Path) -> bytes:
    """8 kHz 16-bit mono PCM of a WAV file of any rate and channel count (decoded by PyAV)."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
    chunks = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            for out in resampler.resample(frame):
                chunks.append(bytes(out.planes[0])[: out.samples * 2])
        for out in resampler.resample(None):
            chunks.append(bytes(out.planes[0])[: out.samples * 2])
    return b"".join(chunks)


def scratch(path: Path, suffix: str) -> Path:
    """A file beside `path` that no other render uses: `serve --workers N` renders the same prompt (the
    fixed ones at start-up, "Sie sind an Position 1 …" whenever callers wait) in N processes at once,
    and a shared name let one process read, or delete, what another's espeak-ng was still writing (a
    waiting caller was hung up, bench/phone.py with 20 callers on 5 processes)."""
    return path.with_name(f"{path.stem}.{os.getpid()}.{secrets.token_hex(4)}{suffix}")


def write_wav(path: Path, pcm: bytes) -> None:
    """`pcm` as an 8 kHz mono WAV at `path`, which appears whole or not at all."""
    draft = scratch(path, ".part")
    with wave.open(str(draft), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(pcm)
    draft.replace(path)


class Prompts:
    """Texts of the catalog as 8 kHz PCM, rendered once and kept on disk and in memory."""

    def __init__(self, directory: Path, catalog: Catalog | None = None) -> None:
        self.directory = directory
        self.catalog = catalog or Catalog()
        self._memory: dict[Path, bytes] = {}
        self._locks: dict[Path, asyncio.Lock] = {}

    def text(self, lang: str, key: str, **values: object) -> str:
        template = self.catalog.get(lang, key)
        return template.format(**values) if values else template

    async def say(self, lang: str, key: str, **values: object) -> bytes:
        """The catalog text `key` in `lang`, filled in, as PCM."""
        return await self.speak(lang, self.text(lang, key, **values))

    async def speak(self, lang: str, text: str) -> bytes:
        voice = VOICES.get(lang, "de")
        digest = hashlib.sha256(f"{voice}\n{SPEED}\n{text}".encode()).hexdigest()[:32]
        path = self.directory / f"{digest}.wav"
        cached = self._memory.get(path)
        if cached is not None:
            return cached
        lock = self._locks.setdefault(path, asyncio.Lock())
        async with lock:
            if path not in self._memory:
                self._memory[path] = await self._load(voice, text, path)
        return self._memory[path]

    async def _load(self, voice: str, text: str, path: Path) -> bytes:
        """The prompt's PCM from its cache file, rendered first when there is none. A cache file that
        does not decode (written whole or not at all, so only a damaged disk or a hand-made file) is
        rendered again instead of failing every call that would hear it."""
        if path.exists():
            try:
                return await asyncio.to_thread(read_pcm, path)
            except av.FFmpegError as exc:
                log.warning("prompt %s in the cache does not decode (%s): rendering it again", path.name, exc)
        return await self._render(voice, text, path)

    async def _render(self, voice: str, text: str, path: Path) -> bytes:
        """espeak-ng's reading of `text`, resampled; written to the cache at `path` and returned (not
        decoded again from the file just written)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        raw = scratch(path, ".espeak.wav")
        process = await asyncio.create_subprocess_exec(
            "espeak-ng",
            "-v",
            voice,
            "-s",
            str(SPEED),
            "-w",
            str(raw),
            "--",
            text,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            _, err = await process.communicate()
            if process.returncode != 0 or not raw.exists():
                raise PromptError(f"espeak-ng -v {voice} failed: {err.decode(errors='replace').strip()}")
            try:
                pcm = await asyncio.to_thread(read_pcm, raw)
            except av.FFmpegError as exc:
                raise PromptError(f"espeak-ng -v {voice} wrote no readable audio: {exc}") from None
            await asyncio.to_thread(write_wav, path, pcm)
            return pcm
        finally:
            raw.unlink(missing_ok=True)

    async def warm(self, items: Iterable[tuple[str, str]]) -> None:
        """Render (lang, text) pairs ahead of the first call; a failure is logged, not raised."""
        for lang, text in items:
            try:
                await self.speak(lang, text)
            except PromptError as exc:
                log.warning("prompt not rendered: %s", exc)
