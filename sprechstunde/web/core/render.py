"""jinja2 page rendering with the request's language."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from sprechstunde.strings import Catalog

TEMPLATES = Path(__file__).parent.parent / "templates"


class Pages:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATES),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )

    def lang(self, request: web.Request) -> str:
        query = request.query.get("lang")
        if query in self.catalog.languages:
            return query
        return self.catalog.pick(request.headers.get("Accept-Language"))

    def render(self, request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
        lang = self.lang(request)
        strings = self.catalog.strings(lang)
        html = self.env.get_template(template).render(lang=lang, t=strings, **context)
        return web.Response(text=html, status=status, content_type="text/html")

    def error(self, request: web.Request, status: int, key: str) -> web.Response:
        return self.render(request, "error.html", status=status, message_key=key)
