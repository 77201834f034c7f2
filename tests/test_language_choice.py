"""Which language a page speaks: ?lang= (remembered in a cookie), the cookie, Accept-Language, German; the
switcher on every page; <html lang dir> (right-to-left for Arabic)."""

from __future__ import annotations

import shutil

from aiohttp.test_utils import make_mocked_request

from sprechstunde.strings import LOCALES_DIR, Catalog
from sprechstunde.web.core.render import LANGUAGE_COOKIE, Pages


async def test_lang_parameter_wins_and_is_remembered(client):
    first = await client.get("/termin?lang=en", headers={"Accept-Language": "de"})
    assert first.status == 200
    assert '<html lang="en" dir="ltr">' in await first.text()
    cookie = first.cookies[LANGUAGE_COOKIE]
    assert cookie.value == "en" and cookie["samesite"] == "Lax" and cookie["max-age"]
    # the next page, without ?lang=, stays English although the browser prefers German
    again = await client.get("/", headers={"Accept-Language": "de"})
    assert '<html lang="en"' in await again.text()
    # a new choice replaces the old one
    german = await client.get("/?lang=de")
    assert '<html lang="de"' in await german.text()
    assert '<html lang="de"' in await (await client.get("/", headers={"Accept-Language": "en"})).text()


async def test_accept_language_without_a_choice(client):
    page = await client.get("/", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert '<html lang="en"' in await page.text()
    assert LANGUAGE_COOKIE not in page.cookies  # negotiation is not a choice: nothing remembered


async def test_unknown_language_is_ignored_and_never_echoed(client):
    for value in ("xx", "<script>", "de-DE", ""):
        page = await client.get("/", params={"lang": value}, headers={"Accept-Language": "de"})
        text = await page.text()
        assert page.status == 200 and '<html lang="de"' in text
        assert "lang=<script>" not in text and "%3Cscript%3E" not in text and "lang=xx" not in text
        assert LANGUAGE_COOKIE not in page.cookies


async def test_the_switcher_links_this_page_in_every_language(client):
    text = await (await client.get("/termin?lang=de")).text()
    assert '<nav class="languages" aria-label="Sprache">' in text
    assert 'href="/termin?lang=en" lang="en" hreflang="en"' in text
    assert 'hreflang="de" aria-current="true">Deutsch</a>' in text


def test_arabic_pages_are_right_to_left(tmp_path):
    """With an Arabic directory in the catalog, pages say dir="rtl" and the switcher names it in Arabic."""
    for lang in ("de", "en"):
        shutil.copytree(LOCALES_DIR / lang, tmp_path / lang)
    (tmp_path / "ar").mkdir()
    (tmp_path / "ar" / "language.toml").write_text('"language.switcher" = "اللغة"\n', encoding="utf-8")
    pages = Pages(Catalog(tmp_path))
    request = make_mocked_request("GET", "/?lang=ar&office=vhs")
    response = pages.render(request, "error.html", status=404, message_key="error.not_found")
    html = response.text
    assert '<html lang="ar" dir="rtl">' in html
    assert 'aria-label="اللغة"' in html
    assert 'href="/?office=vhs&amp;lang=de"' in html  # the other query parameters are kept
    assert ">العربية</a>" in html
    assert response.cookies[LANGUAGE_COOKIE].value == "ar"
