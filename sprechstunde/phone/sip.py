"""The SIP endpoint: PJSIP's pjsua2 (a well-kept SIP and RTP stack, from the Python package index) on a
thread of its own, with each call handed to asyncio as a `PhoneCall`.

pjsua2 is not thread-safe towards Python: one thread (`sip-endpoint`) creates the library, polls its events
(`libHandleEvents`) and runs every command that asyncio asks for (answer, hang up) from a queue between
polls. Audio runs on PJSIP's media clock (the null sound device ticks every 20 ms): each call's
`_CallPort` hands PJSIP the next 20 ms of 8 kHz PCM from the call's `outbound` buffer and puts what the
caller says into `inbound`. Both are deques of 320-byte frames, which append and pop atomically, so the
media clock never waits for the event loop. Events for asyncio (a call arrived, a DTMF digit, hang-up)
are posted with `loop.call_soon_threadsafe`.

Who may call: the trunk (the city's PBX or SIP provider) is let in by its address (`allow`, CIDRs) or by
digest credentials (`username`/`password`, RFC 2617 MD5 with nonces signed by this endpoint, so there is
no nonce table to flood); everybody else gets 403. New calls are limited per source address per minute
and in total (`max_calls`): over that the answer is 503, before any IVR or queue work is done. Malformed
messages never reach us: PJSIP's parser drops or answers them with 400.
"""

from __future__ import annotations

import asyncio
import collections
import ctypes
import functools
import gc
import hashlib
import hmac
import ipaddress
import logging
import queue
import re
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

RATE = 8000  # G.711's sample rate; the conference bridge runs at it, so nothing is resampled in PJSIP
FRAME_MS = 20
FRAME_SAMPLES = RATE * FRAME_MS // 1000
FRAME_BYTES = FRAME_SAMPLES * 2  # 16-bit mono PCM
SILENCE = bytes(FRAME_BYTES)
RELEASE_AFTER_SECONDS = 1.0  # an ended call's pjsua2 objects are kept this long (see SipEndpoint._gone)
# what the outbound buffer holds at most (10 s): a source that runs ahead is cut, never memory
MAX_OUTBOUND = 500
MAX_INBOUND = 50  # 1 s of the caller's audio waiting for the room: older frames are dropped
_AUTH_PARAM = re.compile(r'(\w+)\s*=\s*(?:"([^"]*)"|([^\s,]+))')
_NUMBER = re.compile(r"sips?:([^@;>]+)@")
NONCE_TTL = 300.0
PJSUA_SLOTS = 32


def mask_number(number: str) -> str:
    """What logs show of a calling number: the last two digits (the full number is in the ticket only)."""
    digits = re.sub(r"\D", "", number)
    return "…" + digits[-2:] if len(digits) > 2 else "…"


def calling_number(remote_uri: str) -> str:
    """The user part of the caller's URI (`"Name" <sip:+492151123@pbx>` → `+492151123`)."""
    match = _NUMBER.search(remote_uri)
    return match.group(1) if match else ""


def parse_listen(text: str) -> tuple[str, int]:
    """`host:port`, `[v6]:port` or `port` (all addresses) → (host, port); ValueError otherwise."""
    host, _, port = text.strip().rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    number = int(port)
    if not 0 < number < 65536:
        raise ValueError(f"--sip-listen: {text!r} has no valid port")
    return host, number


@dataclass(frozen=True)
class SipSettings:
    """Where the endpoint listens and whom it lets in (from the `--sip-*` settings)."""

    host: str
    port: int
    allow: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    username: str | None = None
    password: str | None = None
    realm: str = "sprechstunde"
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_port: int | None = None
    # new calls per source address and minute, and calls at the same time
    calls_per_minute: int = 30
    max_calls: int = 30  # beyond this the gate answers 503 (PJSIP's own slot limit may come first)
    rtp_port: int = 0  # first RTP port; 0: any free one
    log_level: int = 1  # PJSIP's own log on stdout: 1 errors only, 4-5 every SIP message (debugging)
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)

    @property
    def open_to_anyone(self) -> bool:
        return not self.allow and not self.username


class CallGate:
    """Who may call and how often (pure logic; the SIP thread asks it for every new INVITE)."""

    def __init__(self, settings: SipSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._clock = clock
        self._recent: dict[str, collections.deque[float]] = {}

    def admit(self, source_ip: str, message: str, active_calls: int) -> tuple[int, str | None]:
        """(status, extra header): 0 to accept, else the final response to send (403, 401 with a
        challenge, 503)."""
        if not self._within_rate(source_ip) or active_calls >= self.settings.max_calls:
            return 503, None
        if self._allowed_address(source_ip):
            return 0, None
        if self.settings.username and self.settings.password:
            if self._digest_ok(message):
                return 0, None
            return 401, self.challenge()
        if self.settings.open_to_anyone:
            return 0, None
        return 403, None

    def _within_rate(self, source_ip: str) -> bool:
        now = self._clock()
        if len(self._recent) > 10_000:  # a flood from many addresses: forget the oldest
            self._recent = {k: v for k, v in self._recent.items() if v and now - v[-1] < 60}
        times = self._recent.setdefault(source_ip, collections.deque())
        while times and now - times[0] > 60:
            times.popleft()
        if len(times) >= self.settings.calls_per_minute:
            return False
        times.append(now)
        return True

    def _allowed_address(self, source_ip: str) -> bool:
        try:
            address = ipaddress.ip_address(source_ip)
        except ValueError:
            return False
        return any(address in network for network in self.settings.allow)

    def challenge(self) -> str:
        stamp = str(int(time.time()))
        sig = hmac.new(self.settings.secret, stamp.encode(), hashlib.sha256).hexdigest()[:24]
        return (
            f'WWW-Authenticate: Digest realm="{self.settings.realm}", nonce="{stamp}.{sig}", '
            'algorithm=MD5, qop="auth"'
        )

    def _digest_ok(self, message: str) -> bool:
        """RFC 2617 MD5 digest of the INVITE's Authorization header, with a nonce we signed."""
        header = next(
            (
                line.split(":", 1)[1].strip()
                for line in message.split("\r\n")
                if line.lower().startswith("authorization:")
            ),
            None,
        )
        if not header or not header.lower().startswith("digest "):
            return False
        params = {m.group(1).lower(): m.group(2) or m.group(3) for m in _AUTH_PARAM.finditer(header[7:])}
        nonce = params.get("nonce", "")
        stamp, _, sig = nonce.partition(".")
        expected = hmac.new(self.settings.secret, stamp.encode(), hashlib.sha256).hexdigest()[:24]
        if not stamp.isdigit() or not hmac.compare_digest(sig, expected):
            return False
        if time.time() - int(stamp) > NONCE_TTL or params.get("username") != self.settings.username:
            return False
        method = message.split(" ", 1)[0]

        def md5(text: str) -> str:
            return hashlib.md5(text.encode()).hexdigest()

        ha1 = md5(f"{self.settings.username}:{params.get('realm', '')}:{self.settings.password}")
        ha2 = md5(f"{method}:{params.get('uri', '')}")
        if params.get("qop"):
            expected_response = md5(
                f"{ha1}:{nonce}:{params.get('nc', '')}:{params.get('cnonce', '')}:{params['qop']}:{ha2}"
            )
        else:
            expected_response = md5(f"{ha1}:{nonce}:{ha2}")
        return params.get("realm") == self.settings.realm and hmac.compare_digest(
            params.get("response", ""), expected_response
        )


class PhoneCall:
    """One answered call as asyncio sees it: digits pressed, audio in and out, hang-up."""

    def __init__(self, endpoint: SipEndpoint, call_id: int, number: str, source: str) -> None:
        self._endpoint = endpoint
        self.call_id = call_id
        self.number = number  # the full calling number: only for a ticket the caller consents to
        self.masked = mask_number(number)
        self.source = source
        self.digits: asyncio.Queue[str] = asyncio.Queue()
        self.ended = asyncio.Event()
        self.media_ready = asyncio.Event()
        self.outbound: collections.deque[bytes] = collections.deque(maxlen=MAX_OUTBOUND)
        self.inbound: collections.deque[bytes] = collections.deque(maxlen=MAX_INBOUND)
        # when set, the media clock asks it for each outbound frame instead of `outbound` (the room's mix)
        self.feed: Callable[[], bytes | None] | None = None
        self.frames_in = 0
        self.frames_out = 0

    def play(self, pcm: bytes) -> None:
        """Queue 8 kHz 16-bit mono PCM to be heard after what is queued already."""
        for offset in range(0, len(pcm), FRAME_BYTES):
            frame = pcm[offset : offset + FRAME_BYTES]
            self.outbound.append(frame + SILENCE[len(frame) :])

    def interrupt(self) -> None:
        """Stop what is being played (a digit was pressed, the advisor is there)."""
        self.outbound.clear()

    async def drained(self, poll: float = 0.02) -> None:
        """Wait until everything queued has been sent, or the call ended."""
        while self.outbound and not self.ended.is_set():
            await asyncio.sleep(poll)

    async def hangup(self) -> None:
        self._endpoint.submit(lambda: self._endpoint._hangup(self.call_id))
        await self.ended.wait()


CallHandler = Callable[[PhoneCall], Awaitable[None]]


class SipEndpoint:
    """PJSIP on its own thread; `start()` returns once it listens, `stop()` ends every call."""

    def __init__(self, settings: SipSettings, on_call: CallHandler) -> None:
        self.settings = settings
        self.gate = CallGate(settings)
        self._on_call = on_call
        self._loop: asyncio.AbstractEventLoop | None = None
        self._commands: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._running = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._calls: dict[int, tuple[Any, PhoneCall | None]] = {}  # call id → (pjsua2 Call, asyncio side)
        self._tasks: set[asyncio.Task] = set()
        # Call objects of ended calls, released once the callback that ended them has returned (not
        # later: pjsua2's ~Call hangs up whatever call holds its slot id by then, and the wheel's 4 slots
        # are reused at once)
        self._gone: list[Any] = []
        # their audio ports (when each call ended), released RELEASE_AFTER_SECONDS later: PJSIP's media
        # clock may still call into a port just after the hang-up, and a port freed under it crashed the
        # process (bench/phone.py, 1 run in 5)
        self._retired: list[tuple[float, Any]] = []
        self.refused: collections.Counter[int] = collections.Counter()
        self.ports: dict[str, int] = {}

    @property
    def active_calls(self) -> int:
        return len(self._calls)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._running.set()
        self._thread = threading.Thread(target=self._run, name="sip-endpoint", daemon=True)
        self._thread.start()
        await self._loop.run_in_executor(None, self._ready.wait)
        if self._error is not None:
            raise RuntimeError(f"the SIP endpoint did not start: {self._error}") from self._error

    async def stop(self) -> None:
        if self._thread is None:
            return
        self._running.clear()
        await asyncio.get_running_loop().run_in_executor(None, self._thread.join, 10)
        self._thread = None
        for task in list(self._tasks):
            task.cancel()

    def submit(self, command: Callable[[], None]) -> None:
        """Run `command` on the SIP thread between two polls."""
        self._commands.put(command)

    # --- the SIP thread ------------------------------------------------------------------------

    def _run(self) -> None:
        import pjsua2 as pj

        self._pj = pj
        ep = pj.Endpoint()
        try:
            ep.libCreate()
            self._configure(ep)
        except BaseException as exc:  # start() reports it
            self._error = exc
            self._ready.set()
            try:
                ep.libDestroy()
            except Exception:
                pass
            return
        self._ready.set()
        try:
            while self._running.is_set():
                ep.libHandleEvents(10)
                self._gone.clear()
                if self._retired and self._retired[0][0] < time.monotonic() - RELEASE_AFTER_SECONDS:
                    limit = time.monotonic() - RELEASE_AFTER_SECONDS
                    self._retired = [(ended, port) for ended, port in self._retired if ended >= limit]
                while True:
                    try:
                        command = self._commands.get_nowait()
                    except queue.Empty:
                        break
                    try:
                        command()
                    except Exception:
                        log.exception("SIP command failed")
        finally:
            try:
                ep.hangupAllCalls()
                hung_up = time.monotonic() + 0.2  # the calls just hung up end (and retire their ports)
                while time.monotonic() < hung_up:
                    ep.libHandleEvents(10)
                # then the last retired port's time, so that none is freed under the media clock
                while self._retired and time.monotonic() < self._retired[-1][0] + RELEASE_AFTER_SECONDS:
                    ep.libHandleEvents(10)
            finally:
                # every pjsua2 object must be gone before the library: a Call destroyed later asserts
                self._calls.clear()
                self._gone.clear()
                self._retired.clear()
                self._account = None
                gc.collect()
                ep.libDestroy()

    def _configure(self, ep: Any) -> None:
        pj = self._pj
        config = pj.EpConfig()
        config.uaConfig.threadCnt = 0  # we poll: every callback runs on this thread
        config.uaConfig.mainThreadOnly = False
        config.uaConfig.userAgent = "Sprechstunde"
        # pjsua clamps this to its compile-time PJSUA_MAX_CALLS, which is 4 in the pjsua2-python wheel:
        # a fifth simultaneous call is refused by PJSIP itself (486) — docs/phone.md
        config.uaConfig.maxCalls = PJSUA_SLOTS
        config.medConfig.clockRate = RATE
        config.medConfig.sndClockRate = RATE
        config.medConfig.channelCount = 1
        config.medConfig.audioFramePtime = FRAME_MS
        config.medConfig.noVad = True
        config.medConfig.ecTailLen = 0
        config.logConfig.level = self.settings.log_level
        config.logConfig.consoleLevel = self.settings.log_level
        ep.libInit(config)
        host = self.settings.host
        for kind, name in ((pj.PJSIP_TRANSPORT_UDP, "udp"), (pj.PJSIP_TRANSPORT_TCP, "tcp")):
            transport = pj.TransportConfig()
            transport.port = self.settings.port
            transport.boundAddress = "" if host in ("0.0.0.0", "::") else host
            ep.transportCreate(kind, transport)
            self.ports[name] = self.settings.port
        if self.settings.tls_cert and self.settings.tls_key:
            transport = pj.TransportConfig()
            transport.port = self.settings.tls_port or self.settings.port + 1
            transport.boundAddress = "" if host in ("0.0.0.0", "::") else host
            transport.tlsConfig.certFile = str(self.settings.tls_cert)
            transport.tlsConfig.privKeyFile = str(self.settings.tls_key)
            ep.transportCreate(pj.PJSIP_TRANSPORT_TLS, transport)
            self.ports["tls"] = transport.port
        ep.libStart()
        ep.audDevManager().setNullDev()
        # G.711 only: what every PBX and trunk speaks, and what the caller's audio is decoded from
        for codec in ep.codecEnum2():
            wanted = codec.codecId.split("/")[0] in ("PCMA", "PCMU", "telephone-event")
            ep.codecSetPriority(
                codec.codecId, 255 if codec.codecId.startswith("PCMA") else 254 if wanted else 0
            )
        account_config = pj.AccountConfig()
        account_config.idUri = f"sip:sprechstunde@{host if host not in ('0.0.0.0', '::') else '127.0.0.1'}"
        media = account_config.mediaConfig.transportConfig
        media.port = self.settings.rtp_port
        media.portRange = 0 if not self.settings.rtp_port else 1000
        if host not in ("0.0.0.0", "::"):
            media.boundAddress = host
        self._account = _account_class(pj, self)()
        self._account.create(account_config, True)

    def _incoming(self, account: Any, prm: Any) -> None:
        pj = self._pj
        call = _call_class(pj, self)(account, prm.callId)
        source = prm.rdata.srcAddress.rsplit(":", 1)[0].strip("[]")
        status, header = self.gate.admit(source, prm.rdata.wholeMsg, len(self._calls))
        if not self._running.is_set():  # shutting down: answered, it would be cut off a moment later
            status, header = 503, ""
        op = pj.CallOpParam(True)
        if status:
            self.refused[status] += 1
            op.statusCode = status
            if header:
                name, _, value = header.partition(": ")
                sip_header = pj.SipHeader()
                sip_header.hName = name
                sip_header.hValue = value
                op.txOption.headers.append(sip_header)
            log.info("SIP call from %s refused with %d", source, status)
            call.hangup(op)
            return
        number = calling_number(call.getInfo().remoteUri)
        self._calls[prm.callId] = (call, None)
        op.statusCode = 200
        call.answer(op)
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._started, prm.callId, number, source)

    def _started(self, call_id: int, number: str, source: str) -> None:
        """asyncio: a call was answered; run the handler (the IVR) for it."""
        entry = self._calls.get(call_id)
        if entry is None:
            return  # hung up already
        phone_call = PhoneCall(self, call_id, number, source)
        self._calls[call_id] = (entry[0], phone_call)
        log.info("call %d from %s (%s) answered", call_id, phone_call.masked, source)
        task = asyncio.ensure_future(self._handle(phone_call))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, phone_call: PhoneCall) -> None:
        try:
            await self._on_call(phone_call)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("call %d failed", phone_call.call_id)
        finally:
            if not phone_call.ended.is_set():
                self.submit(lambda: self._hangup(phone_call.call_id))

    def _phone_call(self, call_id: int) -> PhoneCall | None:
        entry = self._calls.get(call_id)
        return entry[1] if entry else None

    def _post(self, callback: Callable[..., None], *args: Any) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(callback, *args)

    def _hangup(self, call_id: int) -> None:
        entry = self._calls.get(call_id)
        if entry is not None:
            try:
                entry[0].hangup(self._pj.CallOpParam(True))
            except Exception:
                pass  # disconnected meanwhile

    def _media_state(self, call: Any) -> None:
        pj = self._pj
        info = call.getInfo()
        for index, media in enumerate(info.media):
            if media.type != pj.PJMEDIA_TYPE_AUDIO or media.status != pj.PJSUA_CALL_MEDIA_ACTIVE:
                continue
            if getattr(call, "port", None) is not None:
                continue
            audio = call.getAudioMedia(index)
            port = _port_class(pj)(self, info.id)
            fmt = pj.MediaFormatAudio()
            fmt.init(pj.PJMEDIA_FORMAT_PCM, RATE, 1, FRAME_MS * 1000, 16)
            port.createPort(f"call{info.id}", fmt)
            audio.startTransmit(port)
            port.startTransmit(audio)
            call.port = port
            phone_call = self._phone_call(info.id)
            if phone_call is not None:
                self._post(phone_call.media_ready.set)

    def _disconnected(self, call_id: int) -> None:
        entry = self._calls.pop(call_id, None)
        if entry is None:
            return
        call, phone_call = entry
        port = getattr(call, "port", None)
        if port is not None:
            call.port = None
            port.detached = True  # its callbacks answer silence from now on
            self._retired.append((time.monotonic(), port))
        self._gone.append(call)
        if phone_call is not None:
            self._post(phone_call.ended.set)
            self._post(lambda: phone_call.digits.put_nowait(""))  # wakes a wait for a digit


def _account_class(pj: Any, endpoint: SipEndpoint) -> type:
    class Account(pj.Account):
        def onIncomingCall(self, prm: Any) -> None:  # noqa: N802 (pjsua2's name)
            try:
                endpoint._incoming(self, prm)
            except Exception:
                log.exception("incoming call failed")

    return Account


def _call_class(pj: Any, endpoint: SipEndpoint) -> type:
    class Call(pj.Call):
        port = None

        def onCallState(self, prm: Any) -> None:  # noqa: N802
            info = self.getInfo()
            if info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
                endpoint._disconnected(info.id)

        def onCallMediaState(self, prm: Any) -> None:  # noqa: N802
            try:
                endpoint._media_state(self)
            except Exception:
                log.exception("media state failed")

        def onDtmfDigit(self, prm: Any) -> None:  # noqa: N802
            phone_call = endpoint._phone_call(self.getId())
            if phone_call is not None and prm.digit:
                endpoint._post(phone_call.digits.put_nowait, prm.digit[0])

    return Call


_VectorEnds = ctypes.c_void_p * 2  # libstdc++'s std::vector begins with its begin and end pointers
MAX_FRAME_READ = 1 << 16  # bytes; a 20 ms frame is 320 (the proxy is only read inside the callback)


def _vector_bytes(vector: Any) -> bytes:
    """The bytes of a pjsua2 `ByteVector` (a SWIG proxy of std::vector<unsigned char>), read from its
    storage: SWIG copies element by element, ~300 µs for one 20 ms frame — 2 % of a core per call."""
    begin, end = _VectorEnds.from_address(int(vector.this))
    if not (begin and end):
        return b""
    if not 0 <= end - begin <= MAX_FRAME_READ:
        return bytes(vector)  # not a frame as this reader knows them: SWIG's own copy
    return ctypes.string_at(begin, end - begin)


def vector_reader(pj: Any) -> Callable[[Any], bytes]:
    """`_vector_bytes` when this build's vector layout is the one it reads (checked against SWIG's own
    copy of a known vector), else SWIG's copy."""
    try:
        probe = pj.ByteVector(bytes(range(256)) * 2)
        if _vector_bytes(probe) == bytes(probe) and _vector_bytes(pj.ByteVector()) == b"":
            return _vector_bytes
    except Exception:  # another build (no `.this`, another layout): the slow copy
        pass
    log.warning("pjsua2's ByteVector is not laid out as expected: frames copied the slow way")
    return bytes


@functools.cache  # one class (and one layout check) per process
def _port_class(pj: Any) -> type:
    read_frame = vector_reader(pj)
    silent = pj.ByteVector(SILENCE)

    class CallPort(pj.AudioMediaPort):
        """Runs on PJSIP's media clock: one frame in, one frame out every 20 ms."""

        def __init__(self, endpoint: SipEndpoint, call_id: int) -> None:
            super().__init__()
            self._endpoint = endpoint
            self._call_id = call_id
            self.detached = False

        def onFrameRequested(self, frame: Any) -> None:  # noqa: N802
            # getattr: at shutdown PJSIP's media clock may still call into a port whose Python half is
            # already torn down (no `_endpoint`); it gets silence instead of an AttributeError.
            endpoint = None if getattr(self, "detached", True) else getattr(self, "_endpoint", None)
            phone_call = endpoint._phone_call(self._call_id) if endpoint is not None else None
            data = None
            if phone_call is not None:
                if phone_call.outbound:
                    data = phone_call.outbound.popleft()
                elif phone_call.feed is not None:
                    data = phone_call.feed()
                if data is not None:
                    phone_call.frames_out += 1
            frame.type = pj.PJMEDIA_FRAME_TYPE_AUDIO
            frame.buf = pj.ByteVector(data) if data else silent  # the setter copies: one silence for all
            frame.size = FRAME_BYTES

        def onFrameReceived(self, frame: Any) -> None:  # noqa: N802
            # None: the call ended, or torn down at shutdown (see above)
            endpoint = None if getattr(self, "detached", True) else getattr(self, "_endpoint", None)
            if endpoint is None:
                return
            phone_call = endpoint._phone_call(self._call_id)
            if phone_call is not None and frame.size:
                phone_call.inbound.append(read_frame(frame.buf))
                phone_call.frames_in += 1

    return CallPort
