"""The browser code's shared helpers (sprechstunde/web/static/lib/): one definition of each, every import
resolvable, and every page's scripts loading in Debian chromium without a console error.

The static checks read the files; the browser test drives the real server process (tests/browser_support.py)
through each page that has a script, and makes each script show that it ran.
"""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import pytest

from sprechstunde.web.core.services import CSRF_HEADER
from tests.browser_support import DESKTOP, MOBILE, ROOT, add_staff, running_server, sign_in

STATIC = ROOT / "sprechstunde" / "web" / "static"
LIB = STATIC / "lib"
HERE = Path(__file__).parent
ADVISOR = ("libberater", "ein-langes-test-passwort-5")

IMPORT = re.compile(r'^import\s*\{([^}]*)\}\s*from\s*"([^"]+)";', re.MULTILINE)
EXPORT = re.compile(r"^export\s+(?:async\s+)?(?:function|class|const|let)\s+([\w$]+)", re.MULTILINE)


def _scripts() -> dict[str, str]:
    """Every browser script, by its path under static/."""
    return {path.relative_to(STATIC).as_posix(): path.read_text() for path in sorted(STATIC.rglob("*.js"))}


def _defining(pattern: str) -> list[str]:
    found = re.compile(pattern, re.MULTILINE)
    return [name for name, text in _scripts().items() if found.search(text)]


def test_dom_helpers_are_defined_once():
    # `$` and `el` (and the status-line helper) live in lib/dom.js; pages import them
    assert _defining(r"(?:function\s+\$[\s(]|(?:const|let|var)\s+\$\s*=)") == ["lib/dom.js"]
    assert _defining(r"(?:function\s+el\s*\(|(?:const|let|var)\s+el\s*=)") == ["lib/dom.js"]
    assert _defining(r"function\s+show\s*\(") == ["lib/dom.js"]
    dom = (LIB / "dom.js").read_text()
    assert len(re.findall(r"export (?:const \$ =|function el\()", dom)) == 2


def test_sockets_requests_and_dates_go_through_lib():
    assert _defining(r"new WebSocket\(") == ["lib/socket.js"]
    assert _defining(r"(?<![\w.])fetch\(") == ["lib/fetch.js"]
    assert _defining(r"new Intl\.(?:DateTimeFormat|DisplayNames)\(") == ["lib/intl.js"]
    assert _defining(r"\.toLocale(?:Date|Time)String\(") == []  # dates: lib/intl.js dateText
    assert _defining(r"LANGUAGE_NAMES") == []  # language names come from Intl.DisplayNames


def test_csrf_header_is_the_servers():
    declared = re.search(r'export const CSRF_HEADER = "([^"]+)";', (LIB / "fetch.js").read_text())
    assert declared and declared.group(1) == CSRF_HEADER


def test_every_import_names_an_export():
    scripts = _scripts()
    exports = {name: set(EXPORT.findall(text)) for name, text in scripts.items()}
    for name, text in scripts.items():
        for names, source in IMPORT.findall(text):
            target = (Path(name).parent / source).as_posix()  # "./lib/dom.js" from "call.js": "lib/dom.js"
            assert target in scripts, f"{name} imports {source}: no such file"
            for imported in (part.strip() for part in names.split(",") if part.strip()):
                assert imported in exports[target], f"{name} imports {imported} from {source}: not exported"


# ---------------------------------------------------------------- in the browser


@pytest.fixture(scope="module")
def lib_server(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("static-lib")
    add_staff(data_dir, *ADVISOR, office="vhs")
    offices, services = HERE / "booking_offices.toml", HERE / "booking_services.toml"
    with running_server(data_dir, "--offices", str(offices), "--services", str(services)) as server:
        yield server


def _watch(page, problems: list, name: str):
    """Collect the page's script errors and console errors (a module that failed to load, a 404)."""
    page.on("pageerror", lambda error: problems.append(f"{name}: {error}"))
    page.on("console", lambda msg: problems.append(f"{name}: {msg.text}") if msg.type == "error" else None)
    return page


def _watched(browser, viewport: dict, problems: list, name: str):
    return _watch(browser.new_context(locale="de-DE", viewport=viewport).new_page(), problems, name)


def _enqueue(base: str) -> str:
    payload = json.dumps({"office": "vhs", "language": "de", "topic": "Volkshochschulkurs"}).encode()
    request = urllib.request.Request(base + "/api/queue", data=payload, method="POST",
                                     headers={"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["waiting_url"]


@pytest.mark.browser
def test_every_page_runs_its_scripts_without_console_errors(browser, lib_server):
    from playwright.sync_api import expect

    base = lib_server["base_url"]
    problems: list[str] = []

    # start page (home.js, chat.js): offices loaded, language names from Intl in their own language
    home = _watched(browser, MOBILE, problems, "home")
    home.goto(base + "/")
    expect(home.locator("#start-submit")).to_be_enabled()
    expect(home.locator("#start-language option")).to_have_text(["Deutsch", "English"])
    expect(home.locator("#chat-form")).to_be_visible()

    # booking (booking.js) and the sign-in page (no script of its own)
    booking = _watched(browser, MOBILE, problems, "booking")
    booking.goto(base + "/termin/vhs")
    booking.get_by_role("link", name=re.compile("Kurzberatung")).click()
    expect(booking.get_by_role("heading", name="Tag wählen")).to_be_visible()

    # the waiting room (waiting.js over lib/socket.js): the server's queue-status arrived
    citizen = _watched(browser, MOBILE, problems, "waiting")
    citizen.goto(_enqueue(base))
    citizen.wait_for_function("() => (window.sprechstundeWaiting || {}).status")
    expect(citizen.locator("#wait-position")).to_have_text("1")

    # the console (console.js): the entry, its language named by Intl
    advisor = _watched(browser, DESKTOP, problems, "advisor")
    sign_in(advisor, base, ADVISOR[0], ADVISOR[1])
    entries = advisor.locator("#queue-list .queue-entry")
    expect(entries).to_have_count(1)
    expect(entries.first.locator(".queue-facts")).to_contain_text("Deutsch")

    # appointments (appointments.js over lib/fetch.js)
    staff = _watch(advisor.context.new_page(), problems, "appointments")
    staff.goto(base + "/console/appointments")
    expect(staff.locator("#appointments-status")).not_to_have_text("")
    staff.close()

    # the call (call.js, signaling.js, consultation.js): both in it; a guest link (sent with the CSRF header)
    advisor.get_by_role("button", name="Nächste Person").click()
    advisor.wait_for_url("**/join/**")  # straight into the call: no "Beitreten" (issue 17, item 9)
    for page in (citizen, advisor):
        page.wait_for_function("() => window.sprechstunde && window.sprechstunde.state === 'in-call'",
                               timeout=15000)  # fmt: skip
    advisor.get_by_role("button", name="Gast-Link erzeugen").click()
    expect(advisor.locator("#guest-url")).to_have_value(re.compile(r"^http://.+/join/"))

    assert problems == [], problems
