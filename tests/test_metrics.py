"""/metrics: who may read it, and that each figure follows what really happened in the app."""

from __future__ import annotations

import subprocess
import sys

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sprechstunde.web.core.app import create_app
from sprechstunde.web.core.services import SERVICES
from tests.conftest import token_of
from tests.rtc_client import RtcParticipant
from tests.test_documents import PDF, upload
from tests.test_waiting_api import OPEN


async def scrape(client, **headers) -> dict[tuple[str, tuple], float]:
    response = await client.get("/metrics", headers=headers)
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(await response.text()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


async def test_metrics_from_loopback_by_default(client):
    samples = await scrape(client)
    assert value(samples, "sprechstunde_store_up") == 1
    assert value(samples, "sprechstunde_store_ping_seconds") >= 0
    assert value(samples, "sprechstunde_active_rooms") == 0


@pytest.mark.parametrize(
    ("allow", "token", "headers", "status"),
    [
        (["10.0.0.0/8"], None, {}, 403),
        (["10.0.0.0/8"], "geheimes-token", {}, 401),
        (["10.0.0.0/8"], "geheimes-token", {"Authorization": "Bearer falsch"}, 403),
        (["10.0.0.0/8"], "geheimes-token", {"Authorization": "Bearer geheimes-token"}, 200),
        (["127.0.0.0/8"], "geheimes-token", {}, 200),
        (["::1", "127.0.0.1"], None, {}, 200),
    ],
)
async def test_metrics_allowlist_and_bearer_token(aiohttp_client, config, allow, token, headers, status):
    config.metrics_allow = allow
    config.metrics_token = token
    client = await aiohttp_client(create_app(config))
    response = await client.get("/metrics", headers=headers)
    assert response.status == status
    if status != 200:
        assert (await response.json())["error"]["code"] in ("forbidden", "not_authenticated")
        assert "sprechstunde_" not in await response.text()


async def test_queue_outcomes_wait_histogram_and_documents(client, services):
    services.waiting.clock.set(OPEN)
    # the room lives on the same clock as the queue (sprechstunde/clock.py): opened at OPEN
    room_links = services.rooms.links(await services.rooms.create("vhs", 3600), "http://test").as_json()
    for topic in ("Sprachkurs", "Bildungsurlaub"):
        queued = await client.post("/api/queue", json={"office": "vhs", "language": "de", "topic": topic})
        assert queued.status == 201
    samples = await scrape(client)
    assert value(samples, "sprechstunde_queue_length", office="vhs") == 2
    assert value(samples, "sprechstunde_queue_length", office="standesamt") == 0

    member = await services.staff.add("berater", "richtig-langes-passwort", "advisor", ["vhs"], ["de"])
    consultation = await services.queue.claim_next(member)
    services.waiting.clock.set(OPEN.replace(minute=10))
    await services.queue.finish(member, consultation.entry.entry_id, "resolved")
    samples = await scrape(client)
    assert value(samples, "sprechstunde_queue_length", office="vhs") == 1
    assert value(samples, "sprechstunde_consultations_total", office="vhs", outcome="resolved") == 1
    assert value(samples, "sprechstunde_wait_seconds_count", office="vhs") == 1
    assert value(samples, "sprechstunde_wait_seconds_bucket", office="vhs", le="+Inf") == 1

    assert (await upload(client, room_links, PDF, "Antrag.pdf")).status == 201
    link = await client.post(
        f"/api/rooms/{room_links['room_id']}/links",
        json={"url": "https://www.stadt.de/formular", "title": "Formular"},
        headers={"X-Join-Token": token_of(room_links["citizen_url"])},
    )
    assert link.status == 201
    samples = await scrape(client)
    assert value(samples, "sprechstunde_documents_stored", type="file") == 1
    assert value(samples, "sprechstunde_documents_stored", type="link") == 1
    assert value(samples, "sprechstunde_documents_bytes") == len(PDF)


async def test_live_rooms_signaling_counters_and_forwarded_media(client, services, room_links):
    url = str(client.make_url("/ws"))
    citizen = RtcParticipant(client.session, url, token_of(room_links["citizen_url"]), "C")
    advisor = RtcParticipant(client.session, url, token_of(room_links["advisor_url"]), "A")
    try:
        await citizen.join()
        await advisor.join()
        await citizen.send({"type": "chat", "id": 9, "text": "Hallo"})
        await citizen.send({"type": "chat", "id": 10, "text": "   "})  # refused: bad_message
        await advisor.wait_frames(video=5, audio=10, timeout=20)
        await citizen.wait_for("error", code="bad_message")
        samples = await scrape(client)
        assert value(samples, "sprechstunde_active_rooms") == 1
        assert value(samples, "sprechstunde_active_participants") == 2
        assert value(samples, "sprechstunde_signaling_messages_total", type="hello") == 2
        assert value(samples, "sprechstunde_signaling_messages_total", type="chat") == 2
        assert value(samples, "sprechstunde_signaling_errors_total", code="bad_message") == 1
        assert value(samples, "sprechstunde_media_frames_forwarded_total", kind="video") >= 5
        assert value(samples, "sprechstunde_media_frames_forwarded_total", kind="audio") >= 10
        assert value(samples, "sprechstunde_media_bytes_forwarded_total", kind="video") > 1000
    finally:
        await citizen.close()
        await advisor.close()
    # counters keep their totals after the call; the room is gone once everybody left
    samples = await scrape(client)
    assert value(samples, "sprechstunde_media_frames_forwarded_total", kind="video") >= 5


async def test_behind_a_trusted_proxy_the_forwarded_client_counts(aiohttp_client, config):
    """nginx on the same host: without --trusted-proxy every citizen would look like 127.0.0.1 and could
    read /metrics through the proxy; with it, the forwarded address and scheme are used."""
    config.trusted_proxies = ["127.0.0.1/32", "::1"]
    client = await aiohttp_client(create_app(config))
    outside = {"X-Forwarded-For": "198.51.100.7, 203.0.113.9", "X-Forwarded-Proto": "https"}
    assert (await client.get("/metrics", headers=outside)).status == 403
    assert (await client.get("/metrics")).status == 200  # the proxy host itself (Prometheus on it)
    spoofed = {"X-Forwarded-For": "127.0.0.1, 203.0.113.9"}  # the client prepended a loopback address
    assert (await client.get("/metrics", headers=spoofed)).status == 403
    services = client.app[SERVICES]
    await services.staff.add("berater", "richtig-langes-passwort", "advisor", ["vhs"], ["de"])
    login = await client.post(
        "/api/login", json={"username": "berater", "password": "richtig-langes-passwort"}, headers=outside
    )
    assert login.status == 200
    assert "Secure" in login.headers["Set-Cookie"]


async def test_forwarded_headers_of_an_untrusted_peer_are_ignored(client):
    forged = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
    assert (await client.get("/metrics", headers=forged)).status == 200  # still loopback


@pytest.mark.parametrize(
    ("option", "value"), [("--metrics-allow", "intranet"), ("--trusted-proxy", "10.0.0.300")]
)
def test_a_bad_network_option_stops_serve_with_one_line(tmp_path, option, value):
    result = subprocess.run(
        [sys.executable, "-m", "sprechstunde", "serve", "--data-dir", str(tmp_path), "--port", "0",
         option, value],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert result.stderr.strip() == f"error: {option}: {value!r} is not an IP address or CIDR network"
