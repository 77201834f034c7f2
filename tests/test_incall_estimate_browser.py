"""Issue 17, item 7 in real browsers: what two waiting citizens read matches what the advisor does.

Nobody online: the first is next, with no number. The advisor opens the console (idle): the first reads
"gleich", the second the office's handling time (6 minutes in tests/waiting_offices.toml). The advisor
takes "Nächste Person" and goes into the call (the console closes): the second is now next, with the
time left of that consultation, and is told that everyone is in a consultation rather than "nobody is
online". With INCALL_SHOTS set to a directory, the first page (told "gleich") is saved there as
h4-waiting-next.png.
"""

from __future__ import annotations

import asyncio
import os
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sprechstunde.rooms.offices import load_offices
from sprechstunde.rooms.queue import Appointment, QueueService
from sprechstunde.rooms.service import RoomService
from sprechstunde.rooms.tokens import TokenSigner
from sprechstunde.store import SQLiteStore
from sprechstunde.web.core.config import DATABASE_FILE, prepare_data_dir
from tests.browser_support import DESKTOP, MOBILE, add_staff, running_server, sign_in
from tests.test_waiting_browser import ADVISOR, OFFICES, _page, _request_consultation, _wait_out_closed_minute

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def estimate_server(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("estimate")
    add_staff(data_dir, *ADVISOR, office="buergertelefon")
    with running_server(data_dir, "--offices", str(OFFICES)) as server:
        yield server


def test_waiting_pages_say_who_is_next_as_the_advisor_claims(browser, estimate_server):
    from playwright.sync_api import expect

    _wait_out_closed_minute()
    base = estimate_server["base_url"]
    errors: list[str] = []
    first = _page(browser, MOBILE, errors, "first")
    _request_consultation(first, base, "Wohngeld", "Frau Yılmaz")
    second = _page(browser, MOBILE, errors, "second")
    _request_consultation(second, base, "Meldebescheinigung", "Herr Nowak")

    # Nobody online: the first is next, but nobody can say when; the second waits behind them.
    expect(first.locator("#wait-ahead")).to_have_text("Sie sind als Nächstes dran.")
    expect(first.locator("#wait-estimate")).to_have_text("keine – niemand aus der Beratung ist online")
    expect(first.locator("#wait-nobody")).to_have_text(
        "Gerade ist niemand aus der Beratung online. Sie können weiter warten – Ihr Platz bleibt erhalten."
    )
    expect(second.locator("#wait-position")).to_have_text("2")
    expect(second.locator("#wait-ahead")).to_have_text("Vor Ihnen wartet noch eine Person.")

    # The advisor opens the console and is idle: the first is taken at once — not "etwa 6 Minuten".
    advisor = _page(browser, DESKTOP, errors, "advisor")
    sign_in(advisor, base, ADVISOR[0], ADVISOR[1])
    expect(first.locator("#wait-ahead")).to_have_text(
        "Sie sind gleich dran – eine Beraterin oder ein Berater ist frei."
    )
    expect(first.locator("#wait-estimate")).to_have_text("gleich")
    expect(first.locator("#wait-nobody")).to_be_hidden()
    # Only one of the two is told it is their turn; the second comes after the first's consultation.
    expect(second.locator("#wait-ahead")).to_have_text("Vor Ihnen wartet noch eine Person.")
    expect(second.locator("#wait-estimate")).to_have_text("etwa 6 Minuten")
    shots = os.environ.get("INCALL_SHOTS")
    if shots:
        first.screenshot(path=str(Path(shots) / "h4-waiting-next.png"), full_page=True)

    # "Nächste Person" takes exactly the one told "gleich"; the advisor goes into that call.
    advisor.get_by_role("button", name="Nächste Person").click()
    advisor.wait_for_url("**/join/**")
    first.wait_for_function("() => window.sprechstunde && window.sprechstunde.state !== 'waiting'")
    assert second.evaluate("window.sprechstunde.state") == "waiting"
    # Now the second is next: after the running consultation (about 6 minutes left), and the page says
    # that everyone is in a consultation, not that nobody is online.
    expect(second.locator("#wait-position")).to_have_text("1")
    expect(second.locator("#wait-ahead")).to_have_text("Sie sind als Nächstes dran.")
    expect(second.locator("#wait-estimate")).to_have_text("etwa 6 Minuten")
    expect(second.locator("#wait-nobody")).to_have_text(
        "Gerade sind alle, die Sie beraten können, im Gespräch. Sie können weiter warten – Ihr Platz"
        " bleibt erhalten."
    )
    if shots:
        second.screenshot(path=str(Path(shots) / "h4-waiting-busy.png"), full_page=True)
    assert not errors, errors
    for page in (first, second, advisor):
        page.context.close()


def _early_appointment(data_dir: Path, minutes_ahead: int) -> str:
    """An appointment holder who arrives `minutes_ahead` minutes before their slot, queued as the booking's
    join link queues them (QueueService.enqueue with an Appointment), in the server's own store file;
    returns the path of their waiting page."""

    async def enqueue() -> str:
        store = SQLiteStore(data_dir / DATABASE_FILE)
        try:
            signer = TokenSigner(prepare_data_dir(data_dir))
            queue = QueueService(store, load_offices(OFFICES), signer, RoomService(store, signer))
            starts = datetime.now(UTC) + timedelta(minutes=minutes_ahead)
            enqueued = await queue.enqueue("buergertelefon", "de", "Termin", appointment=Appointment(starts))
            return enqueued.token
        finally:
            await store.close()

    # Playwright's sync API runs an event loop in this thread: the store is used from another one.
    with ThreadPoolExecutor(1) as pool:
        return "/wait/" + pool.submit(asyncio.run, enqueue()).result()


def test_early_appointment_and_walk_in_only_the_walk_in_is_next(browser, tmp_path):
    from playwright.sync_api import expect

    _wait_out_closed_minute()
    add_staff(tmp_path, *ADVISOR, office="buergertelefon")
    with running_server(tmp_path, "--offices", str(OFFICES)) as server:
        base = server["base_url"]
        errors: list[str] = []
        advisor = _page(browser, DESKTOP, errors, "advisor")
        sign_in(advisor, base, ADVISOR[0], ADVISOR[1])

        # The appointment (in 30 minutes, so due from 25 minutes on) arrives early: alone in line, they
        # are next, but not before their slot — no "gleich" although the advisor is idle.
        booked = _page(browser, MOBILE, errors, "booked")
        booked.goto(base + _early_appointment(tmp_path, 30))
        expect(booked.locator("#wait-ahead")).to_have_text("Sie sind als Nächstes dran.")
        expect(booked.locator("#wait-estimate")).to_have_text(re.compile(r"^etwa 2[45] Minuten$"))

        # A walk-in comes: the idle advisor takes them at once, so they — and only they — are next.
        walker = _page(browser, MOBILE, errors, "walker")
        _request_consultation(walker, base, "Meldebescheinigung", "Herr Nowak")
        expect(walker.locator("#wait-position")).to_have_text("1")
        expect(walker.locator("#wait-ahead")).to_have_text(
            "Sie sind gleich dran – eine Beraterin oder ein Berater ist frei."
        )
        expect(booked.locator("#wait-position")).to_have_text("2")
        expect(booked.locator("#wait-ahead")).to_have_text("Vor Ihnen wartet noch eine Person.")
        expect(booked.locator("#wait-estimate")).to_have_text(re.compile(r"^etwa 2[45] Minuten$"))
        shots = os.environ.get("INCALL_SHOTS")
        if shots:
            booked.screenshot(path=str(Path(shots) / "h4-waiting-appointment.png"), full_page=True)

        # "Nächste Person" takes the walk-in, as both pages said.
        advisor.get_by_role("button", name="Nächste Person").click()
        advisor.wait_for_url("**/join/**")
        walker.wait_for_function("() => window.sprechstunde && window.sprechstunde.state !== 'waiting'")
        assert booked.evaluate("window.sprechstunde.state") == "waiting"
        expect(booked.locator("#wait-position")).to_have_text("1")
        expect(booked.locator("#wait-ahead")).to_have_text("Sie sind als Nächstes dran.")
        assert not errors, errors
        for page in (advisor, booked, walker):
            page.context.close()
