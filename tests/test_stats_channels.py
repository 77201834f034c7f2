"""Statistics split by channel (issue 20): callers (phone) and waiting-page citizens (video) each get their
count, median and mean wait, abandons and resolution rate per office, on the page and as CSV columns
appended after the older ones (rooms/statistics.py, web/templates/statistics.html)."""

from __future__ import annotations

import csv
import io
from dataclasses import replace

import pytest

from sprechstunde.rooms import statistics
from sprechstunde.rooms.consultations import PHONE
from sprechstunde.web.core.services import SERVICES
from tests.test_consultations_api import login, record
from tests.test_waiting_api import OPEN

TODAY = OPEN.date().isoformat()


def phone(rec):
    return replace(rec, entry_id=f"{rec.entry_id}-phone", channel=PHONE)


# vhs video: 3 queued, 2 admitted (waits 60, 240: median 60, mean 150), 1 resolved + 1 ticket, 1 abandoned
VIDEO = [
    record(TODAY, 9, "resolved", 60, 600),
    record(TODAY, 9, "ticket", 240, 930),
    record(TODAY, 15, "abandoned", 400),
]
# vhs phone: 5 queued, 3 admitted (waits 120, 600, 900: median 600, mean 540), 2 resolved + 1 ticket,
# 2 abandoned
PHONE_CALLS = [
    phone(record(TODAY, 10, "resolved", 120, 300)),
    phone(record(TODAY, 10, "resolved", 900, 300)),
    phone(record(TODAY, 11, "ticket", 600, 300)),
    phone(record(TODAY, 11, "abandoned", 500)),
    phone(record(TODAY, 12, "abandoned", 700)),
]
# the standesamt: video only, so its phone row is all zeros
REGISTRY = [replace(record(TODAY, 9, "resolved", 30, 200), office="standesamt", entry_id="std-1")]


@pytest.fixture
def services(client):
    services = client.app[SERVICES]
    services.waiting.clock.set(OPEN)
    return services


async def _admin_with_figures(client, services, records=(*VIDEO, *PHONE_CALLS, *REGISTRY)) -> None:
    for rec in records:
        await services.queue.log.add(rec)
    await login(client, services, name="leitung", role="admin", offices=("vhs", "standesamt"))


def test_channel_figures_follow_the_definitions():
    rows = statistics.by_channel([*VIDEO, *PHONE_CALLS, *REGISTRY])
    assert [(r.office, r.channel) for r in rows] == [
        ("standesamt", "video"),
        ("standesamt", "phone"),
        ("vhs", "video"),
        ("vhs", "phone"),
    ]
    std_video, std_phone, video, calls = rows
    assert (video.queued, video.consultations, video.abandoned) == (3, 2, 1)
    assert (video.wait_p50, video.wait_average) == (60, 150)
    assert video.resolved_rate == pytest.approx(0.5) and video.abandoned_rate == pytest.approx(1 / 3)
    assert (calls.queued, calls.consultations, calls.resolved) == (5, 3, 2)
    assert (calls.tickets, calls.abandoned) == (1, 2)
    assert (calls.wait_p50, calls.wait_average) == (600, 540)
    assert calls.resolved_rate == pytest.approx(2 / 3) and calls.abandoned_rate == pytest.approx(0.4)
    assert std_video.queued == 1 and std_phone.queued == 0
    assert std_phone.wait_p50 is None and std_phone.resolved_rate is None and std_phone.abandoned_rate is None
    # the day row still counts everyone, and its channels add up to it
    day = statistics.summarize(TODAY, "vhs", [*VIDEO, *PHONE_CALLS])
    assert day.queued == 8 and day.abandoned == 3
    assert sum(c.queued for c in day.channels.values()) == day.queued
    assert statistics.has_phone(PHONE_CALLS) and not statistics.has_phone([*VIDEO, *REGISTRY])


def test_records_stored_before_the_channel_count_as_video():
    from sprechstunde.rooms.consultations import ConsultationRecord
    from sprechstunde.store.port import from_record

    stored = {k: v for k, v in record(TODAY, 9, "resolved", 60).__dict__.items() if k != "channel"}
    old = from_record(ConsultationRecord, stored)
    assert old.channel == "video"
    assert statistics.by_channel([old])[0].queued == 1 and statistics.by_channel([old])[1].queued == 0


async def test_csv_has_channel_columns_after_the_old_ones(client, services):
    await _admin_with_figures(client, services)
    exported = await client.get("/statistics.csv?lang=en")
    assert exported.status == 200
    text = await exported.text()
    header = text.splitlines()[0].split(",")
    old = header.index("feedback_5")
    assert header[: old + 1] == list(statistics.CSV_COLUMNS[: old + 1])  # nothing moved
    assert header[old + 1 :][:2] == ["video_queued", "video_consultations"]
    assert header[-1] == "phone_wait_avg_s"
    rows = {r["office"]: r for r in csv.DictReader(io.StringIO(text))}
    vhs = rows["vhs"]
    assert (vhs["queued"], vhs["abandoned"]) == ("8", "3")  # the old columns: everyone
    assert (vhs["video_queued"], vhs["video_consultations"], vhs["video_abandoned"]) == ("3", "2", "1")
    assert (vhs["video_resolved_first_contact_pct"], vhs["video_abandoned_pct"]) == ("50.0", "33.3")
    assert (vhs["video_wait_p50_s"], vhs["video_wait_avg_s"]) == ("60", "150")
    assert (vhs["phone_queued"], vhs["phone_consultations"], vhs["phone_resolved"]) == ("5", "3", "2")
    assert (vhs["phone_tickets"], vhs["phone_abandoned"], vhs["phone_abandoned_pct"]) == ("1", "2", "40.0")
    assert vhs["phone_resolved_first_contact_pct"] == "66.7"
    assert (vhs["phone_wait_p50_s"], vhs["phone_wait_avg_s"]) == ("600", "540")
    std = rows["standesamt"]
    assert (std["phone_queued"], std["phone_abandoned"]) == ("0", "0")
    assert std["phone_wait_p50_s"] == "" and std["phone_resolved_first_contact_pct"] == ""

    german = (await (await client.get("/statistics.csv?lang=de")).read()).decode("utf-8-sig")
    vhs_de = next(r for r in csv.DictReader(io.StringIO(german), delimiter=";") if r["office"] == "vhs")
    assert vhs_de["phone_resolved_first_contact_pct"] == "66,7" and vhs_de["video_abandoned_pct"] == "33,3"


def _channel_table(html: str) -> dict[tuple[str, str], list[str]]:
    """(office, channel) → the row's cells as text, from the page's channel table."""
    table = html.split('id="stats-channels"', 1)[1].split("</table>", 1)[0]
    found = {}
    for chunk in table.split("<tr data-office=")[1:]:
        office, rest = chunk[1:].split('"', 1)
        channel = rest.split('data-channel="', 1)[1].split('"', 1)[0]
        cells = [c.split(">", 1)[1].split("</t", 1)[0] for c in rest.split("<t")[1:] if c[:2] in ("h ", "d>")]
        found[(office, channel)] = cells
    return found


async def test_page_shows_video_and_phone_per_office(client, services):
    await _admin_with_figures(client, services)
    html = await (await client.get("/statistics?lang=de")).text()
    assert "Nach Kanal: Video und Telefon" in html
    rows = _channel_table(html)
    assert list(rows) == [
        ("standesamt", "video"),
        ("standesamt", "phone"),
        ("vhs", "video"),
        ("vhs", "phone"),
    ]
    # office, channel, queued, consultations, resolved at first contact, abandoned, wait median, wait mean
    # (German percentages with a no-break space)
    assert rows[("vhs", "video")][1:] == ["Video", "3", "2", "50\u00a0%", "1 (33\u00a0%)", "1,0", "2,5"]
    assert rows[("vhs", "phone")][1:] == ["Telefon", "5", "3", "67\u00a0%", "2 (40\u00a0%)", "10,0", "9,0"]
    assert rows[("standesamt", "phone")][1:] == ["Telefon", "0", "0", "–", "0 (–)", "–", "–"]
    assert rows[("vhs", "video")][0] == "Volkshochschule"

    english = _channel_table(await (await client.get("/statistics?lang=en")).text())
    assert english[("vhs", "phone")][1:] == ["Phone", "5", "3", "67%", "2 (40%)", "10.0", "9.0"]


async def test_page_without_callers_keeps_its_old_shape(client, services):
    await _admin_with_figures(client, services, records=VIDEO)
    html = await (await client.get("/statistics?office=vhs&lang=de")).text()
    assert 'id="stats-channels"' not in html and "Nach Kanal" not in html
    assert "1,0 / 4,0 min" in html  # the existing summary is unchanged


async def test_api_gives_each_row_its_channels(client, services):
    """/api/statistics: the day rows and the total carry `channels` (video, phone) with the same
    definitions as the page and the CSV."""
    await _admin_with_figures(client, services)
    data = await (await client.get("/api/statistics?office=vhs")).json()
    phone_total = data["total"]["channels"]["phone"]
    assert (phone_total["queued"], phone_total["consultations"], phone_total["abandoned"]) == (5, 3, 2)
    assert phone_total["resolved"] == 2 and phone_total["tickets"] == 1
    assert phone_total["wait_p50_seconds"] == 600 and phone_total["wait_average_seconds"] == 540
    assert phone_total["abandoned_rate"] == pytest.approx(2 / 5)
    video_day = data["days"][-1]["channels"]["video"]
    assert (video_day["queued"], video_day["consultations"], video_day["wait_p50_seconds"]) == (3, 2, 60)
    assert video_day["wait_average_seconds"] == 150
