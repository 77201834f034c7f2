"""The audio bridge (issue 20, step 5): a real SIP caller (Debian's baresip, sending a 1 kHz tone) is
claimed by an advisor, who joins the consultation room with an aiortc client sending a 600 Hz tone. The
advisor hears 1 kHz from the phone participant, the caller hears (and baresip records) 600 Hz, every 20 ms
crossing the bridge counts as transcoded; closing the consultation hangs up, hanging up leaves the room."""

from __future__ import annotations

import asyncio
import fractions
import math
import shutil
import time as clock
from array import array

import aiohttp
import av
import pytest
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from bench.server import free_udp_and_tcp_port
from sprechstunde.rooms.staff import StaffMember
from sprechstunde.web.consultations.ending import consultation_ended
from sprechstunde.web.core.app import create_app
from sprechstunde.web.core.config import Config
from sprechstunde.web.core.phone import PHONE
from sprechstunde.web.core.services import SERVICES
from tests.phone_support import goertzel, read_wav, tone_wav
from tests.rtc_client import RtcParticipant
from tests.test_phone import NUMBER, OPEN, caller, phone_entries, until  # noqa: F401 (fixture)

pytestmark = pytest.mark.skipif(
    not (shutil.which("baresip") and shutil.which("espeak-ng")), reason="baresip and espeak-ng (./run test)"
)
ADVISOR_RATE = 48000


class ToneTrack(MediaStreamTrack):
    """The advisor's microphone: a steady tone, 20 ms frames at 48 kHz, paced like a real device."""

    kind = "audio"

    def __init__(self, frequency: float, amplitude: int = 8000) -> None:
        super().__init__()
        self.frequency = frequency
        self.amplitude = amplitude
        self._start: float | None = None
        self._pts = 0

    async def recv(self) -> av.AudioFrame:
        samples = ADVISOR_RATE // 50
        if self._start is None:
            self._start = clock.monotonic()
        else:
            self._pts += samples
            wait = self._start + self._pts / ADVISOR_RATE - clock.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        step = 2 * math.pi * self.frequency / ADVISOR_RATE
        pcm = array("h", (int(self.amplitude * math.sin(step * (self._pts + i))) for i in range(samples)))
        frame = av.AudioFrame(format="s16", layout="mono", samples=samples)
        frame.planes[0].update(pcm.tobytes())
        frame.sample_rate = ADVISOR_RATE
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, ADVISOR_RATE)
        return frame


class ListeningAdvisor(RtcParticipant):
    """An advisor that keeps the (left channel of the) audio it receives."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.heard: list[int] = []

    async def _consume(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                self.frames[track.kind] += 1
                if track.kind == "audio":
                    channels = len(frame.layout.channels)
                    data = array("h", bytes(frame.planes[0])[: frame.samples * 2 * channels])
                    self.heard.extend(data[::channels])
        except (MediaStreamError, asyncio.CancelledError):
            pass


def best_window(samples: list[int], rate: int, frequency: float, seconds: float = 0.5) -> float:
    """The strongest relative power at `frequency` over windows of `seconds` (where the tone is)."""
    size = int(rate * seconds)
    return max(
        (goertzel(samples[i : i + size], rate, frequency) for i in range(0, len(samples) - size + 1, size)),
        default=0.0,
    )


@pytest.fixture
def config(tmp_path) -> Config:
    return Config(
        data_dir=tmp_path / "data",
        media_addresses=["127.0.0.1"],
        demo=False,
        port=free_udp_and_tcp_port(),
        sip_listen=f"127.0.0.1:{free_udp_and_tcp_port()}",
        sip_allow=["127.0.0.1/32"],
        sip_calls_per_minute=40,
        phone_announce_seconds=30,
    )


@pytest.fixture
async def app(aiohttp_server, config):
    # the bridge joins over this server's own /ws: the test server listens on the configured port
    server = await aiohttp_server(create_app(config), port=config.port)
    return server.app


async def _claimed_caller(app, caller, tmp_path):  # noqa: F811 (the fixture is passed in)
    services = app[SERVICES]
    services.waiting.clock.set(OPEN)
    sip_port = app[PHONE].endpoint.settings.port
    phone = caller(user=NUMBER, source=tone_wav(tmp_path / "voice.wav", 1000, 120))
    await phone.dial(f"sip:beratung@127.0.0.1:{sip_port}")
    await phone.established()
    await phone.press("1")  # Deutsch
    await asyncio.sleep(1.0)
    await phone.press("1")  # Volkshochschule

    async def queued():
        entries = await phone_entries(services)
        return entries[0] if entries else None

    entry = await until(queued, what="the caller in the queue")
    anna = StaffMember(username="anna", role="advisor", offices=["vhs"], languages=["de"])
    consultation = await services.queue.claim(anna, entry.entry_id)
    room = consultation.room
    token = services.signer.join_token(room.room_id, "advisor", room.expires_at)
    return services, phone, anna, consultation, token


@pytest.mark.parametrize("in_process", [True, False], ids=["in-process", "over-webrtc"])
async def test_caller_and_advisor_hear_each_other_and_closing_hangs_up(
    app,
    caller,  # noqa: F811
    tmp_path,
    config,
    in_process,
):
    """The room is hosted by the process that holds the call: the caller's media joins its session
    directly (media/local.py). Over WebRTC: as to a room on another node (the leg's own peer
    connection to the server), here forced by taking the local way away."""
    bridge = app[PHONE].line.connect
    if not in_process:
        bridge.local_media = None
    services, phone, anna, consultation, token = await _claimed_caller(app, caller, tmp_path)
    before = services.hub.forwarding.decoded
    async with aiohttp.ClientSession() as session:
        advisor = ListeningAdvisor(
            session, f"ws://127.0.0.1:{config.port}/ws", token, "Anna", tracks=[ToneTrack(600)]
        )
        await advisor.join()

        async def phone_joined():
            for message in [advisor.welcome, *advisor.messages]:
                people = message.get("participants", []) + [message.get("participant") or {}]
                if any(p.get("name", "").startswith("Telefon") for p in people):
                    return True
            return False

        await until(phone_joined, what="the phone participant in the room")
        names = [p["name"] for p in advisor.welcome["participants"]] + [
            m["participant"]["name"] for m in advisor.messages if m["type"] == "participant-joined"
        ]
        assert "Telefon …34" in names  # masked: the full number is never shown in the room

        async def camera_off():  # the page shows the caller's name, not a black picture
            phone_id = next(
                p["participant_id"]
                for m in [advisor.welcome, *advisor.messages]
                for p in m.get("participants", []) + [m.get("participant") or {}]
                if p.get("name", "").startswith("Telefon")
            )
            welcome = advisor.welcome["participants"]
            states = [p["media"] for p in welcome if p["participant_id"] == phone_id]
            states += [
                m for m in advisor.messages if m["type"] == "media-state" and m["participant_id"] == phone_id
            ]
            return bool(states) and states[-1]["video"] is False and states[-1]["audio"] is True

        await until(camera_off, what="the phone participant's camera off")
        # 3 s of the caller's voice at the advisor (after "Sie werden jetzt verbunden")
        enough = 4 * ADVISOR_RATE
        await until(lambda: _ready(len(advisor.heard) >= enough), what="4 s of audio at the advisor")
        heard = advisor.heard[-3 * ADVISOR_RATE :]
        at_1k = best_window(heard, ADVISOR_RATE, 1000)
        assert at_1k > 0.5, f"the caller's 1 kHz tone at the advisor: {at_1k:.2f}"
        assert best_window(heard, ADVISOR_RATE, 600) < 0.1  # not an echo of the advisor's own tone
        leg = bridge.legs[consultation.entry.entry_id]
        assert leg.in_process is in_process
        assert leg.mix.frames_in > 50  # the advisor's audio decoded for the caller
        await asyncio.sleep(2.0)  # two more seconds of the advisor's tone into the caller's recording

        done = await services.queue.finish(anna, consultation.entry.entry_id, "resolved")
        await consultation_ended(services, done)

        async def hung_up():
            return app[PHONE].endpoint.active_calls == 0

        await until(hung_up, timeout=10, what="the call hung up after the consultation closed")
        left = await advisor.wait_for("participant-left", timeout=10)
        assert left["reason"] == "left"
        await advisor.close()
    transcoded = services.hub.forwarding.decoded - before
    # both directions, 50 frames a second each: well over 4 s of audio crossed the bridge
    assert transcoded > 400, transcoded
    await until(lambda: _ready(phone.heard() is not None), timeout=5, what="baresip's recording")
    await until(lambda: _ready(b"terminated" in (phone.dir / "baresip.log").read_bytes()), timeout=5)
    phone.close()  # the recording's header is complete once baresip has closed it
    samples, rate = read_wav(phone.heard())
    at_600 = best_window(samples, rate, 600)
    assert at_600 > 0.5, f"the advisor's 600 Hz tone in the caller's recording: {at_600:.2f}"


async def test_hanging_up_leaves_the_room(app, caller, tmp_path, config):  # noqa: F811
    services, phone, anna, consultation, token = await _claimed_caller(app, caller, tmp_path)
    async with aiohttp.ClientSession() as session:
        advisor = RtcParticipant(session, f"ws://127.0.0.1:{config.port}/ws", token, "Anna", tracks=[])
        await advisor.join()
        bridge = app[PHONE].line.connect

        async def bridged():
            leg = bridge.legs.get(consultation.entry.entry_id)
            return leg is not None and leg.welcome

        await until(bridged, what="the caller in the room")
        await asyncio.sleep(1.0)
        phone.hangup()
        left = await advisor.wait_for("participant-left", timeout=10)
        assert left["reason"] == "left"
        await until(lambda: _ready(not bridge.legs), timeout=5, what="the bridge closed")
        # the consultation itself stays with the advisor, who closes it with an outcome
        assert (await services.queue.get(consultation.entry.entry_id)).state == "called"
        await advisor.close()


async def _ready(value: bool) -> bool:
    return value


class TrackListener(ListeningAdvisor):
    """Keeps what each remote audio track brought apart (`heard` interleaves them)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.tracks_heard: dict[str, list[int]] = {}

    async def _consume(self, track: MediaStreamTrack) -> None:
        mine = self.tracks_heard.setdefault(track.id, []) if track.kind == "audio" else []
        try:
            while True:
                frame = await track.recv()
                self.frames[track.kind] += 1
                if track.kind == "audio":
                    channels = len(frame.layout.channels)
                    data = array("h", bytes(frame.planes[0])[: frame.samples * 2 * channels])
                    mine.extend(data[::channels])
                    self.heard.extend(data[::channels])
        except (MediaStreamError, asyncio.CancelledError):
            pass


async def test_an_interpreter_hears_the_caller_and_the_caller_hears_both(app, caller, tmp_path, config):  # noqa: F811
    """Three-way (issue 20): phone, advisor, interpreter on a guest link. The interpreter hears the
    caller's 1 kHz; the caller's recording holds both browser voices (600 Hz and 800 Hz), mixed."""
    services, phone, anna, consultation, token = await _claimed_caller(app, caller, tmp_path)
    room = consultation.room
    guest_token = services.signer.join_token(room.room_id, "guest", room.expires_at)
    url = f"ws://127.0.0.1:{config.port}/ws"
    async with aiohttp.ClientSession() as session:
        advisor = ListeningAdvisor(session, url, token, "Anna", tracks=[ToneTrack(600)])
        await advisor.join()
        interpreter = TrackListener(session, url, guest_token, "Dolmetscherin", tracks=[ToneTrack(800)])
        await interpreter.join()
        assert interpreter.welcome["role"] == "guest"
        enough = 4 * ADVISOR_RATE

        async def both_voices() -> bool:  # the caller's and the advisor's track, 4 s each
            heard = interpreter.tracks_heard.values()
            return len(heard) >= 2 and all(len(samples) >= enough for samples in heard)

        await until(both_voices, what="4 s of both voices at the interpreter")
        tones = {
            frequency: max(best_window(s[-3 * ADVISOR_RATE :], ADVISOR_RATE, frequency) for s in heard)
            for frequency in (1000, 600)
            for heard in [list(interpreter.tracks_heard.values())]
        }
        assert tones[1000] > 0.5, f"the caller's 1 kHz at the interpreter: {tones[1000]:.2f}"
        assert tones[600] > 0.5, f"the advisor's 600 Hz at the interpreter: {tones[600]:.2f}"
        leg = app[PHONE].line.connect.legs[consultation.entry.entry_id]
        assert leg.in_process  # the room is hosted here: no peer connection of the caller's own
        await asyncio.sleep(3.0)  # both browser voices into the caller's recording
        assert leg.mix.frames_in > 100
        done = await services.queue.finish(anna, consultation.entry.entry_id, "resolved")
        await consultation_ended(services, done)

        async def hung_up():
            return app[PHONE].endpoint.active_calls == 0

        await until(hung_up, timeout=10, what="the call hung up after the consultation closed")
        await interpreter.close()
        await advisor.close()
    await until(lambda: _ready(phone.heard() is not None), timeout=5, what="baresip's recording")
    await until(lambda: _ready(b"terminated" in (phone.dir / "baresip.log").read_bytes()), timeout=5)
    phone.close()
    samples, rate = read_wav(phone.heard())
    at_600, at_800 = best_window(samples, rate, 600), best_window(samples, rate, 800)
    # two tones of equal level mixed: each holds about half of the power
    assert at_600 > 0.2 and at_800 > 0.2, f"600 Hz {at_600:.2f}, 800 Hz {at_800:.2f} in what the caller heard"
