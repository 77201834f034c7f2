"""jinja2 page rendering in the request's language.

The language is chosen once per request, in this order: `?lang=` (and remembered in a cookie, so a choice
made on the switcher — plain links, no JavaScript — holds on every later page), the cookie, the browser's
Accept-Language, German. Only languages the catalog has count; anything else is ignored, never echoed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from aiohttp import web

from sprechstunde.l10n import language_name
from sprechstunde.strings import Catalog

TEMPLATES = Path(__file__).parent.parent / "templates"
LANGUAGE_COOKIE = "lang"
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600
RIGHT_TO_LEFT = frozenset({"ar"})


class Pages:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATES),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )

    def lang(self, request: web.Request) -> str:
        """The request's language: ?lang=, the remembered choice, Accept-Language, German."""
        for choice in (request.query.get("lang"), request.cookies.get(LANGUAGE_COOKIE)):
            if choice in self.catalog.languages:
                return choice
        return self.catalog.pick(request.headers.get("Accept-Language"))

    def switcher(self, request: web.Request, current: str) -> list[dict[str, Any]]:
        """The language links of the page header: this page (path and query kept) in each language, each
        language named in itself."""
        query = [(key, value) for key, value in request.query.items() if key != "lang"]
        return [
            {
                "code": code,
                "name": language_name(code),
                "url": request.path + "?" + urlencode([*query, ("lang", code)]),
                "current": code == current,
            }
            for code in self.catalog.languages
        ]

    def render(self, request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
        lang = self.lang(request)
        strings = self.catalog.strings(lang)
        html = self.env.get_template(template).render(
            lang=lang,
            dir="rtl" if lang in RIGHT_TO_LEFT else "ltr",
            languages=self.switcher(request, lang),
            t=strings,
            **context,
        )
        response = web.Response(text=html, status=status, content_type="text/html")
        if request.query.get("lang") == lang and request.cookies.get(LANGUAGE_COOKIE) != lang:
            response.set_cookie(
                LANGUAGE_COOKIE, lang, max_age=LANGUAGE_COOKIE_AGE, path="/", samesite="Lax", httponly=True
            )
        return response

    def error(self, request: web.Request, status: int, key: str) -> web.Response:
        return self.render(request, "error.html", status=status, message_key=key)
