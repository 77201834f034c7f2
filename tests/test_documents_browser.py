"""Real browser: the advisor shares a PDF in the call, the citizen sees it appear and downloads it.

Uses the `browser` and `server` fixtures (tests/conftest.py, tests/browser_support.py): Debian's chromium
against `sprechstunde serve` running as a real process.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tests.browser_support import DESKTOP, MOBILE, create_room, join_call, open_page, screenshot

pytestmark = pytest.mark.browser

PDF = b"%PDF-1.4\n% Merkblatt\n" + os.urandom(2 * 1024 * 1024) + b"\n%%EOF\n"


def test_advisor_shares_a_pdf_and_the_citizen_downloads_it(browser, server):
    from playwright.sync_api import expect

    room = create_room(server)
    errors: list[str] = []
    citizen = open_page(browser, room["citizen_url"], MOBILE, errors)
    advisor = open_page(browser, room["advisor_url"], DESKTOP, errors)
    join_call(citizen, advisor)

    advisor.set_input_files(
        "#documents-file",
        files=[{"name": "Merkblatt Wohngeld.pdf", "mimeType": "application/pdf", "buffer": PDF}],
    )
    own = advisor.locator("#documents-list .document-item", has_text="Merkblatt Wohngeld.pdf")
    expect(own).to_have_count(1, timeout=15000)
    expect(own.get_by_role("button", name="„Merkblatt Wohngeld.pdf“ löschen")).to_be_visible()

    # The citizen's list is updated by the signaling event, without reloading anything.
    shared = citizen.locator("#documents-list .document-item", has_text="Merkblatt Wohngeld.pdf")
    expect(shared).to_have_count(1, timeout=5000)
    expect(shared).to_contain_text("von der Beratung")
    expect(shared.get_by_role("button", name="„Merkblatt Wohngeld.pdf“ löschen")).to_have_count(0)
    with citizen.expect_download(timeout=15000) as info:
        shared.get_by_role("button", name="„Merkblatt Wohngeld.pdf“ herunterladen").click()
    download = info.value
    assert download.suggested_filename == "Merkblatt Wohngeld.pdf"
    got = Path(download.path()).read_bytes()
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(PDF).hexdigest()

    # A disguised program is refused with a clear sentence, and nothing appears on either side.
    citizen.set_input_files(
        "#documents-camera",
        files=[{"name": "foto.jpg", "mimeType": "image/jpeg", "buffer": b"MZ\x90\x00" + os.urandom(4000)}],
    )
    refusal = citizen.locator("#documents-error")
    expect(refusal).to_contain_text("Diese Art von Datei kann nicht geteilt werden")
    expect(advisor.locator("#documents-list .document-item")).to_have_count(1)

    # Links: only http(s); shown as text with the domain highlighted, opened without opener/referrer.
    citizen.get_by_label("Adresse (https://…)").fill("javascript:alert(1)")
    citizen.get_by_role("button", name="Link teilen").click()
    expect(citizen.locator("#documents-error")).to_contain_text("http:// oder https://")
    citizen.get_by_label("Adresse (https://…)").fill("https://www.stadt-koeln.de/service/wohngeld")
    citizen.get_by_label("Bezeichnung").fill("<b>Wohngeld</b>")
    citizen.get_by_role("button", name="Link teilen").click()
    link = advisor.locator("#documents-list .document-item.is-link a")
    expect(link).to_have_count(1, timeout=5000)
    expect(link.locator(".link-host")).to_have_text("www.stadt-koeln.de")
    assert link.get_attribute("rel") == "noopener noreferrer"
    assert link.get_attribute("href") == "https://www.stadt-koeln.de/service/wohngeld"
    expect(advisor.locator("#documents-list .is-link .document-name")).to_have_text("<b>Wohngeld</b>")
    assert advisor.locator("#documents-list b").count() == 0

    screenshot(citizen, "documents-citizen-mobile")
    screenshot(advisor, "documents-advisor-desktop")

    # The advisor deletes the PDF; it disappears on the citizen's side too.
    own.get_by_role("button", name="„Merkblatt Wohngeld.pdf“ löschen").click()
    expect(shared).to_have_count(0, timeout=5000)
    assert not errors, errors
    for page in (citizen, advisor):
        page.context.close()
