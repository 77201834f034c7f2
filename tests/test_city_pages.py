"""The pages every city publishes (issue 18; sprechstunde/web/city): accessibility statement with its
feedback form, Leichte Sprache, sign language, privacy notice and imprint — from the example city and from
a city's own TOML file, checked at start-up — and the footer that links them from every page."""

from __future__ import annotations

import html
import re
import time
from pathlib import Path

import pytest

from sprechstunde.web.city.pages import FEEDBACK_KIND, FEEDBACK_PURPOSE, FOOTER
from sprechstunde.web.city.settings import EXAMPLE_PATH, CityConfigError, blocks, load_city_pages
from sprechstunde.web.core.app import create_app
from sprechstunde.web.core.cli import main
from sprechstunde.web.core.config import Config
from sprechstunde.web.core.services import SERVICES

PAGES = ("/barrierefreiheit", "/leichte-sprache", "/gebaerdensprache", "/datenschutz", "/impressum")
PASSWORD = "ein-langes-test-passwort-7"
NONCE = re.compile(r'name="nonce" value="([^"]+)"')
REFERENCE = re.compile(r'id="feedback-reference">(SP-\d{4}-\d{6})<')

CITY = """
[city]
name = "Beispielhausen"

[accessibility]
status = "vollstaendig"
prepared = 2026-10-01
reviewed = 2026-11-15
method = "pruefung"
feedback_office = "standesamt"
contact_required = false
scope.de = "Die Videoberatung der Stadt Beispielhausen."
scope.en = "The video consultations of Beispielhausen."

[accessibility.conciliation]
name = "Ombudsstelle für barrierefreie IT des Landes"
address = "Landeshaus 3\\n99999 Landeshauptstadt"
url = "https://ombudsstelle.example"

[easy_language]
separator = "bindestrich"

[[easy_language.sections]]
heading = "Was ist Video|beratung?"
text = "Sie sprechen mit der Stadt über das Internet."

[sign_language]
video = "gebaerden/sprechstunde.mp4"
captions = "gebaerden/sprechstunde.vtt"
transcript = "Im Video erklärt Frau Muster die Video-Beratung."

[privacy]
controller = "Stadt Beispielhausen, Rathausplatz 2"
officer = "datenschutz@beispielhausen.example"
authority = "Die Landesbeauftragte für Datenschutz"

[[imprint.sections]]
heading = { de = "Anbieterin", en = "Provider" }
text.de = "Stadt Beispielhausen, vertreten durch die Bürgermeisterin"
text.en = "City of Beispielhausen, represented by the mayor"
"""


def _city_file(tmp_path: Path, text: str = CITY) -> Path:
    path = tmp_path / "city.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _with_video(data_dir: Path) -> None:
    folder = data_dir / "gebaerden"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sprechstunde.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    (folder / "sprechstunde.vtt").write_text("WEBVTT\n\n00:00.000 --> 00:02.000\nHallo\n", encoding="utf-8")


@pytest.fixture
async def city_client(aiohttp_client, tmp_path):
    """An app with the custom city file above (and its video under the data directory)."""
    config = Config(
        data_dir=tmp_path / "data",
        media_addresses=["127.0.0.1"],
        demo=False,
        city_path=_city_file(tmp_path),
        ticket_retention_days=14,
    )
    _with_video(config.data_dir)
    return await aiohttp_client(create_app(config))


def _text(page: str) -> str:
    """The page's visible words, roughly: tags removed, entities decoded, spaces collapsed."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


async def _get(client, path: str, **headers: str) -> str:
    response = await client.get(path, headers=headers)
    assert response.status == 200, path
    return await response.text()


async def _feedback(client, path: str = "/barrierefreiheit", **fields: str):
    page = await _get(client, path)
    nonce = NONCE.search(page).group(1)
    return await client.post("/barrierefreiheit", data={"nonce": nonce, **fields})


# --- the example city -------------------------------------------------------------------------------------


async def test_every_page_renders_from_the_example_and_says_it_is_one(client):
    expected = {
        "/barrierefreiheit": ["Erklärung zur Barrierefreiheit", "teilweise vereinbar", "Schlichtung"],
        "/leichte-sprache": ["Leichte Sprache", "Was ist Sprech·stunde?", "Video·beratung"],
        "/gebaerdensprache": ["Gebärdensprache", "noch kein Video in Gebärdensprache", "SMS an 0171 2345678"],
        "/datenschutz": ["Datenschutzerklärung", "Verantwortliche Stelle", "nicht aufgezeichnet"],
        "/impressum": ["Impressum", "Stadt Musterstadt", "Medienstaatsvertrag"],
    }
    for path, words in expected.items():
        text = _text(await _get(client, path))
        for word in words:
            assert word in text, (path, word)
        if path != "/leichte-sprache":
            assert "erfundenen Stadt „Musterstadt“" in text, path


async def test_the_statement_has_every_part_of_the_eu_model(client):
    text = _text(await _get(client, "/barrierefreiheit"))
    assert "mit den Anforderungen an die Barrierefreiheit teilweise vereinbar" in text
    assert "Nicht barrierefreie Inhalte" in text and "eingescannte Formulare" in text
    assert "am Freitag, 20. November 2026 erstellt" in text
    assert "Zuletzt überprüft wurde sie am Dienstag, 1. Dezember 2026" in text
    assert "Selbstbewertung" in text
    assert "Ihre Nachricht geht an: Bürgertelefon" in text
    assert "Schlichtungsstelle nach dem Behindertengleichstellungsgesetz" in text
    assert "kostenlos" in text and "https://www.schlichtungsstelle-bgg.de" in text


async def test_the_privacy_notice_states_the_retention_the_server_runs_with(client, services):
    text = _text(await _get(client, "/datenschutz"))
    config = services.config
    assert f"{config.retention_days:g} Tage nach dem Ende der Beratung gelöscht" in text
    assert f"{config.ticket_retention_days:g} Tage nach Abschluss der Anfrage gelöscht" in text
    assert f"{services.booking_mailer.retention_days:g} Tage nach dem Termin gelöscht" in text
    assert "24 Stunden nach Ihrer Anmeldung im Warteraum" in text and "12 Stunden" in text
    assert "{" not in text  # every placeholder filled


async def test_pages_in_another_language_say_the_city_text_is_german(client):
    page = await _get(client, "/impressum?lang=tr")
    assert "Bu sayfadaki şehir bilgileri yalnızca Almanca olarak mevcuttur." in _text(page)
    assert '<div class="city-text city-address" lang="de" dir="ltr">' in page
    arabic = await _get(client, "/barrierefreiheit?lang=ar")
    assert 'dir="rtl"' in arabic and "بيان إمكانية الوصول" in arabic
    assert 'lang="de" dir="ltr"' in arabic  # the German gaps keep their direction inside the RTL page
    german = await _get(client, "/impressum?lang=de")
    assert 'id="german-only"' not in german


async def test_the_footer_is_on_every_page_also_errors_and_staff_pages(client):
    footer = '<nav aria-label="Rechtliches und Barrierefreiheit">'
    for path in ("/", "/login", "/termin", "/termin/datenschutz", *PAGES):
        page = await _get(client, path)
        assert footer in page, path
        for link, _ in FOOTER:
            assert f'href="{link}"' in page, (path, link)
    missing = await client.get("/gibt-es-nicht")
    assert missing.status == 404 and footer in await missing.text()
    bad_link = await client.get("/join/kaputt")
    assert bad_link.status in (403, 404) and footer in await bad_link.text()
    english = await _get(client, "/?lang=en")
    assert '<nav aria-label="Legal information and accessibility">' in english and ">Legal notice<" in english


async def test_the_console_has_the_footer(client, services):
    await services.staff.add("leitung", PASSWORD, "lead", ["buergertelefon"], ["de"])
    signed = await client.post("/api/login", json={"username": "leitung", "password": PASSWORD})
    assert signed.status == 200
    assert 'aria-label="Rechtliches und Barrierefreiheit"' in await _get(client, "/console")


# --- a city's own file ------------------------------------------------------------------------------------


async def test_a_city_file_replaces_the_example(city_client):
    statement = _text(await _get(city_client, "/barrierefreiheit"))
    assert "Musterstadt" not in statement and "Beispiel:" not in statement
    assert "vollständig vereinbar" in statement and "Nicht barrierefreie Inhalte" not in statement
    assert "Prüfung durch eine unabhängige Stelle" in statement
    assert "Ihre Nachricht geht an: Standesamt" in statement and "(freiwillig)" in statement
    assert "Ombudsstelle für barrierefreie IT des Landes" in statement and "Landeshaus 3" in statement
    english = await _get(city_client, "/barrierefreiheit?lang=en")
    assert "The video consultations of Beispielhausen." in english

    easy = _text(await _get(city_client, "/leichte-sprache"))
    assert "Was ist Video-Beratung?" in easy and "Sprech·stunde" not in easy  # the city's own sections

    imprint = await _get(city_client, "/impressum?lang=en")
    assert "City of Beispielhausen, represented by the mayor" in imprint and 'id="german-only"' not in imprint
    privacy = _text(await _get(city_client, "/datenschutz"))
    assert "14 Tage nach Abschluss der Anfrage gelöscht" in privacy and "Rathausplatz 2" in privacy


async def test_the_sign_language_video_with_captions_and_text(city_client):
    page = await _get(city_client, "/gebaerdensprache")
    assert '<video id="sign-video" controls preload="metadata" src="/gebaerdensprache/video"' in page
    assert '<track kind="captions" src="/gebaerdensprache/untertitel.vtt" srclang="de"' in page
    assert "Im Video erklärt Frau Muster die Video-Beratung." in page
    assert "noch kein Video" not in page
    video = await city_client.get("/gebaerdensprache/video")
    assert video.status == 200 and video.headers["Content-Type"] == "video/mp4"
    assert (await video.read()).startswith(b"\x00\x00\x00\x18ftyp")
    captions = await city_client.get("/gebaerdensprache/untertitel.vtt")
    assert captions.headers["Content-Type"].startswith("text/vtt") and "WEBVTT" in await captions.text()


async def test_without_a_video_there_is_no_video_route(client):
    assert (await client.get("/gebaerdensprache/video")).status == 404
    assert (await client.get("/gebaerdensprache/untertitel.vtt")).status == 404


async def test_a_video_on_another_host_is_allowed_on_that_page_only(aiohttp_client, tmp_path):
    text = CITY.replace('video = "gebaerden/sprechstunde.mp4"', 'video = "https://media.example/dgs.mp4"')
    text = text.replace('captions = "gebaerden/sprechstunde.vtt"\n', "")
    config = Config(data_dir=tmp_path / "data", demo=False, city_path=_city_file(tmp_path, text))
    client = await aiohttp_client(create_app(config))
    page = await client.get("/gebaerdensprache")
    assert "media-src 'self' blob: https://media.example;" in page.headers["Content-Security-Policy"]
    assert 'src="https://media.example/dgs.mp4"' in await page.text()
    other = await client.get("/impressum")
    assert "media.example" not in other.headers["Content-Security-Policy"]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (('status = "vollstaendig"', 'status = "meistens"'), "accessibility.status: Input should be"),
        (('feedback_office = "standesamt"', 'feedback_office = "rathaus"'), "there is no office 'rathaus'"),
        (('status = "vollstaendig"', 'status = "teilweise"'), 'status "teilweise" needs the list of gaps'),
        (("reviewed = 2026-11-15", "reviewed = 2026-09-01"), "the last review cannot be before"),
        (('video = "gebaerden/sprechstunde.mp4"', 'video = "../../etc/x.mp4"'), "must lie under the data"),
        (('video = "gebaerden/sprechstunde.mp4"', 'video = "fehlt.mp4"'), "no such file"),
        (('transcript = "Im Video', 'contact = "Im Video'), "needs its text alternative"),
        (('name = "Beispielhausen"', 'name = ""'), "city.name: String should have at least 1 character"),
        (('controller = "Stadt', 'controller = { en = "City"}\n# "'), "the German text (de) is missing"),
        (("[[imprint.sections]]", "[[imprint.abschnitte]]"), "imprint.abschnitte: Extra inputs"),
        (('separator = "bindestrich"', "separator = 3"), "easy_language.separator"),
        (("[city]", "[city\n"), "not valid TOML"),
    ],
)
def test_a_broken_city_file_stops_start_up_with_a_clear_message(tmp_path, change, problem):
    data_dir = tmp_path / "data"
    _with_video(data_dir)
    path = _city_file(tmp_path, CITY.replace(*change))
    with pytest.raises(CityConfigError) as caught:
        load_city_pages(path, data_dir=data_dir, offices=["vhs", "standesamt"])
    assert str(caught.value).startswith(f"{path}: ")
    assert problem in str(caught.value)


def test_the_server_refuses_to_start_with_a_broken_city_file(tmp_path, capsys):
    path = _city_file(tmp_path, CITY.replace('status = "vollstaendig"', 'status = "egal"'))
    with pytest.raises(CityConfigError, match="accessibility.status"):
        create_app(Config(data_dir=tmp_path / "data", demo=False, city_path=path))
    assert main(["serve", "--data-dir", str(tmp_path / "data"), "--city", str(path), "--port", "0"]) == 2
    assert f"error: {path}: accessibility.status" in capsys.readouterr().err
    assert main(["serve", "--data-dir", str(tmp_path / "data"), "--city", str(tmp_path / "fehlt.toml")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_the_example_city_passes_and_stays_with_the_offices_there_are(tmp_path):
    city = load_city_pages(None, data_dir=tmp_path, offices=["buergertelefon", "vhs"])
    assert city.example and city.source == str(EXAMPLE_PATH)
    # another city's offices file without the demo office: the example's form goes to its first office
    other = load_city_pages(None, data_dir=tmp_path, offices=["jugendamt"])
    assert other.file.accessibility.feedback_office == "jugendamt"


def test_city_texts_are_paragraphs_and_lists_never_markup():
    found = blocks("Erste Zeile\n- eins\n- zwei\n\n<script>alert(1)</script>")
    assert [(b.kind, b.lines) for b in found] == [
        ("p", ("Erste Zeile",)),
        ("ul", ("eins", "zwei")),
        ("p", ("<script>alert(1)</script>",)),
    ]


async def test_city_text_is_escaped(aiohttp_client, tmp_path):
    text = CITY.replace('"Stadt Beispielhausen, Rathausplatz 2"', '"<b onclick=x>Rathaus</b> & Co"')
    config = Config(data_dir=tmp_path / "data", demo=False, city_path=_city_file(tmp_path, text))
    _with_video(config.data_dir)
    client = await aiohttp_client(create_app(config))
    page = await _get(client, "/datenschutz")
    assert "&lt;b onclick=x&gt;Rathaus&lt;/b&gt; &amp; Co" in page and "<b onclick" not in page


# --- the feedback form ------------------------------------------------------------------------------------


async def test_feedback_opens_a_ticket_the_office_sees(client, services):
    response = await _feedback(
        client,
        message="Der Knopf „Beitreten“ wird vom Screenreader nicht vorgelesen.",
        where="/join/…",
        contact="anna@example.org",
    )
    assert response.status == 200
    page = await response.text()
    reference = REFERENCE.search(page).group(1)
    assert "Danke! Wir haben Ihre Nachricht erhalten." in _text(page) and 'role="status"' in page

    await services.staff.add("telefon", PASSWORD, "advisor", ["buergertelefon"], ["de"])
    signed = await client.post("/api/login", json={"username": "telefon", "password": PASSWORD})
    assert signed.status == 200
    tickets = (await (await client.get("/api/tickets?state=open")).json())["tickets"]
    [ticket] = [t for t in tickets if t["reference"] == reference]
    assert ticket["office"] == "buergertelefon" and ticket["source"] == "accessibility"
    assert ticket["topic"] == "Barrierefreiheit" and ticket["contact"] == "anna@example.org"
    assert "nicht vorgelesen" in ticket["notes"] and "Seite: /join/…" in ticket["notes"]
    console = await _get(client, "/console")
    assert reference in console and "Barriere gemeldet" in console


async def test_a_resent_form_shows_the_same_reference(client, services):
    page = await _get(client, "/barrierefreiheit")
    form = {"nonce": NONCE.search(page).group(1), "message": "Kontrast zu schwach", "contact": "0221 123456"}
    first = REFERENCE.search(await (await client.post("/barrierefreiheit", data=form)).text()).group(1)
    again = REFERENCE.search(await (await client.post("/barrierefreiheit", data=form)).text()).group(1)
    assert first == again
    tickets = await services.queue.tickets.for_office("buergertelefon", None)
    assert [t.reference for t in tickets if t.source == "accessibility"] == [first]


async def test_the_contact_may_be_left_out_where_the_city_allows_it(city_client):
    response = await _feedback(city_client, message="Untertitel fehlen")
    assert response.status == 200
    reference = REFERENCE.search(await response.text()).group(1)
    services = city_client.app[SERVICES]
    ticket = await services.queue.tickets.get(reference)
    assert ticket.office == "standesamt" and ticket.contact is None


@pytest.mark.parametrize(
    ("fields", "status", "message"),
    [
        ({"message": "   ", "contact": "anna@example.org"}, 400, "Bitte beschreiben Sie die Barriere."),
        ({"message": "x" * 2001, "contact": "anna@example.org"}, 400, "höchstens 2000 Zeichen"),
        ({"message": "Zu klein", "where": "y" * 301, "contact": "a@b.de"}, 400, "Höchstens 300 Zeichen"),
        ({"message": "Zu klein", "contact": ""}, 400, "damit wir Ihnen antworten können"),
        ({"message": "Zu klein", "contact": "keine Ahnung"}, 400, "weder eine E-Mail-Adresse noch"),
    ],
)
async def test_bad_feedback_shows_the_form_again_with_the_reason(client, services, fields, status, message):
    response = await _feedback(client, **fields)
    assert response.status == status
    page = await response.text()
    assert message in _text(page) and 'role="alert"' in page and 'aria-invalid="true"' in page
    assert NONCE.search(page)  # a fresh form, filled in with what was sent
    if fields["message"].strip() and len(fields["message"]) < 100:
        assert f">{fields['message']}</textarea>" in page
    assert not [t for t in await services.queue.tickets.for_office("buergertelefon", None)]


async def test_a_missing_or_forged_nonce_is_refused(client, services):
    fields = {"message": "Zu klein", "contact": "anna@example.org"}
    for nonce in ("", "erfunden.abc"):
        response = await client.post("/barrierefreiheit", data={"nonce": nonce, **fields})
        assert response.status == 400
        assert "Das Formular ist abgelaufen" in _text(await response.text())
    assert await services.store.get(FEEDBACK_KIND, "erfunden") is None
    assert not await services.queue.tickets.for_office("buergertelefon", None)


async def test_an_expired_form_is_refused(client, services):
    expired = services.signer.sign(FEEDBACK_PURPOSE, {"n": "alt", "exp": int(time.time()) - 1})
    response = await client.post(
        "/barrierefreiheit", data={"nonce": expired, "message": "Zu klein", "contact": "anna@example.org"}
    )
    assert response.status == 400 and "abgelaufen" in await response.text()


async def test_a_post_from_another_site_is_refused(client, services):
    page = await _get(client, "/barrierefreiheit")
    response = await client.post(
        "/barrierefreiheit",
        data={"nonce": NONCE.search(page).group(1), "message": "Zu klein", "contact": "anna@example.org"},
        headers={"Sec-Fetch-Site": "cross-site"},
    )
    assert response.status == 403
    assert "von einer anderen Website gesendet" in _text(await response.text())
    assert not await services.queue.tickets.for_office("buergertelefon", None)


async def test_feedback_is_rate_limited_like_written_questions(client, services):
    page = await _get(client, "/barrierefreiheit")
    nonce = NONCE.search(page).group(1)
    statuses = []
    for _ in range(31):
        response = await client.post("/barrierefreiheit", data={"nonce": nonce, "message": "", "contact": ""})
        statuses.append(response.status)
    assert statuses[:30] == [400] * 30 and statuses[30] == 429
    assert "warten Sie eine Minute" in _text(await response.text())
