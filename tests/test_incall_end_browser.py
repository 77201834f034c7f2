"""Issue 17 items 1 and 2 in a real browser: the citizen's end screen after the advisor closes the
consultation (ticket reference, the shared document, booking link), the satisfaction survey and its result
on /statistics, the hand-over interstitial, and an advisor who leaves without closing.

Chromium pages for the citizen(s), the advisor and the office lead, through the real server process with
tests/waiting_offices.toml (open around the clock). Screenshots: SPRECHSTUNDE_SCREENSHOTS (shot-h1-*.png).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.browser_support import DESKTOP, MOBILE, add_staff, running_server, screenshot, sign_in
from tests.test_waiting_browser import (
    ADVISOR,
    OFFICES,
    _in_call,
    _page,
    _request_consultation,
    _wait_out_closed_minute,
)

pytestmark = pytest.mark.browser

LEAD = ("leitung", "noch-ein-langes-test-passwort-8")
LEAFLET = b"%PDF-1.4\n% Merkblatt Wohngeld\n" + b"0" * 4000 + b"\n%%EOF\n"


@pytest.fixture(scope="module")
def end_server(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("ending")
    add_staff(data_dir, *ADVISOR, office="buergertelefon")
    add_staff(data_dir, *LEAD, office="buergertelefon", role="lead")
    with running_server(data_dir, "--offices", str(OFFICES)) as server:
        yield server


def _sign_in(page, base: str, account: tuple[str, str]) -> None:
    sign_in(page, base, account[0], account[1])


def _next_person(advisor, citizen, base: str) -> None:
    advisor.goto(base + "/console")
    advisor.get_by_role("button", name="Nächste Person").click()
    advisor.wait_for_url("**/join/**")
    for page in (citizen, advisor):
        _in_call(page)


def test_end_screen_with_ticket_document_and_survey(browser, end_server):
    from playwright.sync_api import expect

    _wait_out_closed_minute()
    base = end_server["base_url"]
    errors: list[str] = []
    citizen = _page(browser, DESKTOP, errors, "citizen")
    _request_consultation(citizen, base, "Wohngeld", "Frau Yılmaz")
    advisor = _page(browser, DESKTOP, errors, "advisor")
    _sign_in(advisor, base, ADVISOR)
    _next_person(advisor, citizen, base)

    # The advisor shares a leaflet in the call; the citizen's list shows it.
    advisor.set_input_files(
        "#documents-file", files=[{"name": "Merkblatt.pdf", "mimeType": "application/pdf", "buffer": LEAFLET}]
    )
    expect(citizen.locator("#documents-list")).to_contain_text("Merkblatt.pdf", timeout=15000)

    # The advisor closes with a ticket; the citizen's page turns into the end screen.
    advisor.get_by_label("Nacharbeit nötig – Vorgang (Ticket) anlegen").check()
    advisor.get_by_label("Notizen").fill("INTERN: Bescheid vom Vermieter fehlt")
    advisor.get_by_role("button", name="Beratung abschließen").click()
    expect(advisor.locator("#consultation-status")).to_contain_text(re.compile(r"SP-\d{4}-\d{6}"))
    reference = re.search(r"SP-\d{4}-\d{6}", advisor.locator("#consultation-status").inner_text()).group(0)

    ended = citizen.locator("#ended")
    expect(ended.get_by_role("heading", name="Ihr Beratungsgespräch ist beendet")).to_be_visible(
        timeout=15000
    )
    expect(citizen.locator("#incall")).to_be_hidden()
    expect(citizen.locator("#ended-ticket")).to_contain_text(f"Ihre Vorgangsnummer {reference}")
    expect(citizen.locator("#ended-text")).to_contain_text("Bürgertelefon bearbeitet Ihr Anliegen weiter")
    expect(ended).not_to_contain_text("INTERN")
    document = ended.get_by_role("link", name="Merkblatt.pdf")
    expect(document).to_be_visible()
    expect(citizen.locator("#ended-kept")).to_contain_text(
        re.compile(r"bis zum \d{1,2}\. \w+ \d{4} herunterladen")
    )
    expect(ended.get_by_role("link", name="Termin vereinbaren")).to_have_attribute(
        "href", re.compile(r"^/termin(/buergertelefon)?\?lang=de$")
    )
    with citizen.expect_download() as download:
        document.click()
    assert Path(download.value.path()).read_bytes() == LEAFLET
    assert download.value.suggested_filename == "Merkblatt.pdf"

    # The survey: 4 of 5 stars and a comment → thank you.
    survey = citizen.locator("#ended-survey")
    expect(survey.get_by_text("Wie zufrieden sind Sie mit dem Beratungsgespräch?")).to_be_visible()
    survey.get_by_role("button", name="Bewertung senden").click()
    expect(citizen.locator("#survey-error")).to_have_text("Bitte wählen Sie eine Bewertung von 1 bis 5.")
    survey.locator('label[for="survey-score-4"]').click()
    assert survey.get_by_label("4 von 5").is_checked()
    assert survey.locator(".star.lit").count() == 4
    survey.get_by_label("Möchten Sie uns noch etwas sagen?").fill("Sehr freundlich, danke!")
    screenshot(citizen, "h1-end-desktop")
    survey.get_by_role("button", name="Bewertung senden").click()
    expect(citizen.locator("#survey-thanks")).to_have_text("Vielen Dank für Ihre Bewertung!")
    expect(citizen.locator("#survey-form")).to_be_hidden()

    # 360 px wide: the end screen fits without sideways scrolling.
    citizen.set_viewport_size({"width": 360, "height": 740})
    assert citizen.evaluate("document.documentElement.scrollWidth") <= 360
    screenshot(citizen, "h1-end-360")

    # A reload shows the end screen again (not an empty call), the survey answered once only.
    citizen.reload()
    expect(ended.get_by_role("heading", name="Ihr Beratungsgespräch ist beendet")).to_be_visible()
    expect(citizen.locator("#ended-ticket")).to_contain_text(reference)
    expect(citizen.locator("#survey-thanks")).to_have_text(
        "Sie haben dieses Gespräch bereits bewertet. Vielen Dank!"
    )
    expect(citizen.locator("#prejoin")).to_be_hidden()

    # The office lead sees the rating on /statistics.
    lead = _page(browser, DESKTOP, errors, "lead")
    _sign_in(lead, base, LEAD)
    lead.goto(base + "/statistics?office=buergertelefon")
    expect(lead.locator("#stats-feedback dd")).to_have_text("4,0")
    expect(lead.locator("#stats-feedback-count dd")).to_have_text("1")
    expect(lead.locator(".stats-table tbody tr").last).to_contain_text("0 / 0 / 0 / 1 / 0")
    screenshot(lead, "h1-statistics-desktop")
    assert not errors, errors
    for page in (citizen, advisor, lead):
        page.context.close()


def test_hand_over_and_advisor_leaving(browser, end_server):
    from playwright.sync_api import expect

    _wait_out_closed_minute()
    base = end_server["base_url"]
    errors: list[str] = []
    citizen = _page(browser, MOBILE, errors, "citizen")
    _request_consultation(citizen, base, "KiTa-Platz", "Herr Nowak")
    advisor = _page(browser, DESKTOP, errors, "advisor")
    _sign_in(advisor, base, ADVISOR)
    _next_person(advisor, citizen, base)

    # Hand-over: the citizen is told where they go and why their place is kept, then waits there.
    advisor.get_by_text("An eine andere Stelle übergeben").click()
    advisor.get_by_label("Stelle", exact=True).select_option("familienbuero")
    advisor.get_by_label("Notiz für die Kolleg*innen").fill("INTERN: fragt nach KiTa")
    advisor.get_by_role("button", name="In deren Warteschlange übergeben").click()
    expect(citizen.get_by_role("heading", name="Sie werden weitergeleitet")).to_be_visible(timeout=15000)
    expect(citizen.locator("#ended-text")).to_contain_text("Sie werden an Familienbüro weitergegeben.")
    expect(citizen.locator("#ended-text")).to_contain_text("Sie behalten Ihren Platz")
    expect(citizen.locator("#ended")).not_to_contain_text("INTERN")
    screenshot(citizen, "h1-handover-mobile")
    expect(citizen.locator("#wait-office")).to_have_text("Familienbüro", timeout=15000)
    expect(citizen.locator("#wait-handover")).to_have_text(
        "Sie wurden an Familienbüro weitergegeben. Sie behalten Ihren Platz: "
        "Es zählt die Zeit, zu der Sie ursprünglich angekommen sind."
    )
    citizen.context.close()

    # The advisor leaves a call without closing it: the citizen is told and can end it.
    second = _page(browser, MOBILE, errors, "second")
    _request_consultation(second, base, "Meldebescheinigung", "Frau Berg")
    _next_person(advisor, second, base)
    advisor.locator("#leave-button").click()  # "Verlassen", and confirm where the page asks first
    confirm = advisor.locator("#leave-confirm")
    if confirm.count() and confirm.is_visible():
        confirm.click()
    notice = second.locator("#advisor-gone")
    expect(notice).to_contain_text("hat das Gespräch verlassen", timeout=20000)
    screenshot(second, "h1-advisor-left-mobile")
    notice.get_by_role("button", name="Gespräch jetzt beenden").click()
    expect(second.get_by_role("heading", name="Das Gespräch wurde unterbrochen")).to_be_visible()
    expect(second.get_by_role("link", name="Neu anstellen")).to_have_attribute(
        "href", "/?lang=de&office=buergertelefon"
    )
    assert not errors, errors
    for page in (second, advisor):
        page.context.close()
