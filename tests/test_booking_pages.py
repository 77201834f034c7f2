"""The citizen's booking pages through the real app, without JavaScript: office → service → channel →
calendar → slot → form → confirmation; double submit; manage (cancel, reschedule, .ics); join link."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape
from urllib.parse import quote

import icalendar
import pytest

from sprechstunde.scheduling.records import BOOKING_KIND
from sprechstunde.web.core.services import SERVICES
from tests.test_booking_api import TUESDAY, advisor, at


@pytest.fixture
def services(client):
    services = client.app[SERVICES]
    services.waiting.clock.set(at("12:00", TUESDAY - timedelta(days=1)))
    return services


def hrefs(html: str) -> list[str]:
    return [unescape(h) for h in re.findall(r'href="([^"]+)"', html)]


def field(html: str, name: str) -> str:
    return unescape(re.search(rf'name="{name}" value="([^"]*)"', html).group(1))


async def get(client, url: str, status: int = 200, **kw) -> str:
    response = await client.get(url, **kw)
    assert response.status == status, (url, response.status)
    return await response.text()


async def form_page(client) -> str:
    slot = quote(at("08:00").isoformat())
    return await get(client, f"/termin/vhs/weiterbildung/video?tag={TUESDAY}&zeit={slot}")


def booking_form(html: str, **change) -> dict:
    return {
        "nonce": field(html, "nonce"),
        "starts_at": field(html, "starts_at"),
        "name": "Erika Mustermann",
        "email": "erika@example.org",
        "phone": "",
        "consent": "yes",
    } | change


async def test_steps_from_office_to_confirmation(client, services):
    await advisor(services)
    start = await get(client, "/termin", headers={"Accept-Language": "de"})
    assert "/termin/vhs" in hrefs(start) and 'aria-current="step"' in start
    office = await get(client, "/termin/vhs")
    assert "/termin/vhs/weiterbildung" in hrefs(office) and "Beratung Weiterbildung" in office
    channel = await get(client, "/termin/vhs/weiterbildung")
    assert {"/termin/vhs/weiterbildung/video", "/termin/vhs/weiterbildung/in_person"} <= set(hrefs(channel))
    # a service with one channel skips the question
    only_video = await client.get("/termin/vhs/sprachkurs", allow_redirects=False)
    assert only_video.status == 303 and only_video.headers["Location"] == "/termin/vhs/sprachkurs/video"

    month = await get(client, f"/termin/vhs/weiterbildung/video?monat={TUESDAY:%Y-%m}")
    day_link = f"/termin/vhs/weiterbildung/video?tag={TUESDAY}#slots"
    assert day_link in hrefs(month) and "13 freie Termine" in month
    day = await get(client, day_link.split("#")[0])
    slot_links = [h for h in hrefs(day) if "zeit=" in h]
    assert len(slot_links) == 13 and "08:00 Uhr" in day

    form = await get(client, slot_links[0].split("#")[0])
    assert 'name="consent"' in form and "/termin/datenschutz" in hrefs(form)
    assert "E-Mail-Versand ist auf diesem Server nicht eingerichtet" in form
    response = await client.post(
        "/termin/vhs/weiterbildung/video", data=booking_form(form), allow_redirects=False
    )
    assert response.status == 303
    confirmation_url = response.headers["Location"]
    assert confirmation_url.startswith("/termin/verwalten/") and confirmation_url.endswith("?neu=1")

    page = await get(client, confirmation_url)
    booking = (await services.scheduling.all())[0]
    assert "Ihr Termin ist gebucht" in page and booking.reference in page
    assert "Dienstag" in page and "08:00 Uhr" in page
    join_links = [h for h in hrefs(page) if h.startswith("/termin/beitreten/")]
    assert len(join_links) == 1
    assert "Es wird keine E-Mail versendet" in page
    manage_path = confirmation_url.split("?")[0]
    assert f"{services.config.public_url}{manage_path}" in page
    ics = await client.get(f"{manage_path}/termin.ics")
    assert ics.content_type == "text/calendar"
    event = next(iter(icalendar.Calendar.from_ical(await ics.read()).walk("VEVENT")))
    assert event.decoded("DTSTART") == at("08:00")


async def test_double_submit_books_once_and_errors_keep_the_form(client, services):
    await advisor(services)
    await advisor(services, "bert")
    form = await form_page(client)
    data = booking_form(form)
    first = await client.post("/termin/vhs/weiterbildung/video", data=data, allow_redirects=False)
    second = await client.post("/termin/vhs/weiterbildung/video", data=data, allow_redirects=False)
    assert first.status == second.status == 303
    assert first.headers["Location"] == second.headers["Location"]
    assert len(await services.store.scan(BOOKING_KIND)) == 1

    fresh = await form_page(client)
    for change, status, text in [
        ({"consent": ""}, 400, "Datenschutzhinweise gelesen haben"),
        ({"email": "kaputt@"}, 400, "prüfen Sie die E-Mail-Adresse"),
        ({"name": ""}, 400, "geben Sie Ihren Namen an"),
        ({"nonce": "forged.nonce"}, 400, "Formular ist abgelaufen"),
    ]:
        response = await client.post("/termin/vhs/weiterbildung/video", data=booking_form(fresh, **change))
        assert response.status == status
        html = await response.text()
        assert text in html and 'role="alert"' in html
        # the citizen's input is still there
        assert 'value="Erika Mustermann"' in html or change.get("name") == ""
    assert len(await services.store.scan(BOOKING_KIND)) == 1


async def test_taken_slot_shows_the_message_and_fresh_slots(client, services):
    await advisor(services)
    form = await form_page(client)
    other = await form_page(client)  # two citizens look at the same free slot
    await client.post("/termin/vhs/weiterbildung/video", data=booking_form(form))
    assert "Diese Uhrzeit ist nicht mehr frei" in await form_page(client)
    response = await client.post("/termin/vhs/weiterbildung/video", data=booking_form(other, name="Max"))
    assert response.status == 409
    html = await response.text()
    assert "Dieser Termin ist gerade vergeben" in html
    slots = [h for h in hrefs(html) if "zeit=" in h]
    assert slots and quote(at("08:00").isoformat()) not in " ".join(slots)
    assert len(await services.store.scan(BOOKING_KIND)) == 1


async def test_manage_cancel_and_reschedule(client, services):
    await advisor(services)
    form = await form_page(client)
    response = await client.post(
        "/termin/vhs/weiterbildung/video", data=booking_form(form), allow_redirects=False
    )
    manage = response.headers["Location"].split("?")[0]

    chooser = await get(client, f"{manage}/verschieben?tag={TUESDAY}")
    new_slot = next(h for h in hrefs(chooser) if "zeit=" in h and quote(at("09:20").isoformat()) in h)
    confirm = await get(client, new_slot.split("#")[0])
    assert "Auf diese Uhrzeit verschieben" in confirm
    moved = await client.post(
        f"{manage}/verschieben", data={"starts_at": at("09:20").isoformat()}, allow_redirects=False
    )
    assert moved.status == 303 and moved.headers["Location"].endswith("verschoben=1")
    # issue 17, item 11: the same link, now for the new time; a repeated POST changes nothing
    assert moved.headers["Location"].split("?")[0] == manage
    again = await client.post(
        f"{manage}/verschieben", data={"starts_at": at("09:20").isoformat()}, allow_redirects=False
    )
    assert again.status == 303 and again.headers["Location"] == moved.headers["Location"]
    assert "Ihr Termin wurde verschoben" in await get(client, moved.headers["Location"])

    cancelled = await client.post(f"{manage}/absagen", allow_redirects=False)
    assert cancelled.status == 303
    page = await get(client, manage)
    assert "Dieser Termin wurde abgesagt" in page and "/absagen" not in page
    statuses = sorted(b.status for b in await services.scheduling.all())
    assert statuses == ["cancelled"]


async def test_join_link_countdown_waiting_room_and_passed(client, services):
    await advisor(services)
    form = await form_page(client)
    response = await client.post("/termin/vhs/weiterbildung/video", data=booking_form(form))
    join = next(h for h in hrefs(await response.text()) if h.startswith("/termin/beitreten/"))
    early = await get(client, join)
    assert "Ihr Termin beginnt bald" in early and 'id="countdown"' in early and "07:50 Uhr" in early
    services.waiting.clock.set(at("07:52"))
    opened = await client.get(join, allow_redirects=False)
    assert opened.status == 303 and opened.headers["Location"].startswith("/wait/")
    again = await client.get(join, allow_redirects=False)
    assert again.headers["Location"] == opened.headers["Location"]
    assert (await client.get(opened.headers["Location"])).status == 200
    services.waiting.clock.set(at("08:31"))
    assert "Termin ist vorbei" in await get(client, join)


async def test_bad_links_are_clear_pages(client, services):
    await advisor(services)
    for url, status in [
        ("/termin/verwalten/forged.token", 403),
        ("/termin/beitreten/forged.token", 403),
        ("/termin/nowhere", 404),
        ("/termin/vhs/nothing", 404),
        ("/termin/vhs/sprachkurs/in_person", 404),
    ]:
        html = await get(client, url, status=status)
        assert "Traceback" not in html and 'class="notice error"' in html
    expired = services.signer.sign("booking-manage", {"b": "x", "exp": 1})
    assert "abgelaufen" in await get(client, f"/termin/verwalten/{expired}", status=410)


async def test_english_pages_and_privacy_notice(client, services):
    await advisor(services)
    html = await get(client, "/termin/vhs/weiterbildung/video?lang=en")
    assert "Choose a day" in html and "lang=en" in " ".join(hrefs(html))
    privacy = await get(client, "/termin/datenschutz", headers={"Accept-Language": "en"})
    assert "Privacy notice" in privacy
    # ?lang=en is remembered (a cookie) over the browser's Accept-Language …
    assert "Privacy notice" in await get(client, "/termin/datenschutz", headers={"Accept-Language": "de"})
    client.session.cookie_jar.clear()  # … a browser without that choice gets its Accept-Language
    assert "Datenschutzhinweise" in await get(
        client, "/termin/datenschutz", headers={"Accept-Language": "de"}
    )


async def test_advisor_appointments_page(client, services):
    await advisor(services)
    anonymous = await client.get("/console/appointments", allow_redirects=False)
    assert anonymous.status == 303 and anonymous.headers["Location"] == "/login"
    await client.post("/api/login", json={"username": "anna", "password": "richtig-langes-passwort"})
    html = await get(client, "/console/appointments")
    csrf = re.search(r'data-csrf="([^"]+)"', html).group(1)
    assert 'src="/static/appointments.js"' in html and "appointments.no_show" in html
    session = client.session.cookie_jar.filter_cookies(client.make_url("/"))["sprechstunde_session"].value
    assert services.check_csrf(session, csrf)
    console = await get(client, "/console")
    assert 'href="/console/appointments"' in console


async def test_in_person_confirmation_shows_the_address_and_no_join_link(client, services):
    await advisor(services)
    slot = quote(at("08:00").isoformat())
    form = await get(client, f"/termin/vhs/weiterbildung/in_person?tag={TUESDAY}&zeit={slot}")
    response = await client.post("/termin/vhs/weiterbildung/in_person", data=booking_form(form, email=""))
    html = await response.text()
    assert "Ihr Termin ist gebucht" in html and "Bildungszentrum, Am Markt 1" in html
    assert not [h for h in hrefs(html) if h.startswith("/termin/beitreten/")]
    assert "Es wird keine E-Mail versendet" in html


async def test_consultation_language_limits_slots_to_advisors_who_speak_it(client, services):
    await advisor(services, "anna", languages=("de",))
    await advisor(services, "ayse", languages=("de", "tr"))
    base = "/termin/vhs/weiterbildung/video"
    german = await get(client, f"{base}?tag={TUESDAY}")
    assert 'option value="tr"' in german
    turkish = await get(client, f"{base}?sprache=tr&tag={TUESDAY}")
    assert all("sprache=tr" in h for h in hrefs(turkish) if "zeit=" in h)
    slot = quote(at("08:00").isoformat())
    form = await get(client, f"{base}?sprache=tr&tag={TUESDAY}&zeit={slot}")
    assert 'name="language" value="tr"' in form
    response = await client.post(f"{base}?sprache=tr", data=booking_form(form) | {"language": "tr"})
    assert response.status == 200
    booking = (await services.scheduling.all())[0]
    assert (booking.language, booking.advisor) == ("tr", "ayse")
    # nobody else speaks Turkish: 08:00 is gone in Turkish, still free in German
    assert quote(at("08:00").isoformat()) not in await get(client, f"{base}?sprache=tr&tag={TUESDAY}")
    assert quote(at("08:00").isoformat()) in await get(client, f"{base}?tag={TUESDAY}")
