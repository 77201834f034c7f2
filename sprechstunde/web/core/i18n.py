"""UI strings: one TOML file per area under web/locales/, one table per language.

German is the reference language; a key missing in another language falls back to German, so a
partial translation never shows a raw key. The short weekday names ("day.mon" …) are CLDR's
(sprechstunde.l10n), for every language the files have.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from sprechstunde.l10n import weekday_abbreviations

LOCALES_DIR = Path(__file__).parent.parent / "locales"
DEFAULT_LANGUAGE = "de"


class Catalog:
    def __init__(self, directory: Path = LOCALES_DIR) -> None:
        self._messages: dict[str, dict[str, str]] = {}
        for path in sorted(directory.glob("*.toml")):
            with path.open("rb") as fh:
                for lang, table in tomllib.load(fh).items():
                    self._messages.setdefault(lang, {}).update(table)
        for lang, table in self._messages.items():  # weekday names come from CLDR, not from the files
            days = {f"day.{key}": name for key, name in weekday_abbreviations(lang).items()}
            self._messages[lang] = days | table
        self.languages = tuple(sorted(self._messages, key=lambda lang: lang != DEFAULT_LANGUAGE))

    def pick(self, accept_language: str | None) -> str:
        """The best supported language for an Accept-Language header (quality values honoured)."""
        choices: list[tuple[float, int, str]] = []
        for index, part in enumerate((accept_language or "").split(",")):
            fields = part.strip().split(";")
            tag = fields[0].strip().lower().split("-")[0]
            quality = 1.0
            for param in fields[1:]:
                name, _, value = param.strip().partition("=")
                if name == "q":
                    try:
                        quality = float(value)
                    except ValueError:
                        quality = 0.0
            if tag in self._messages and quality > 0:
                choices.append((-quality, index, tag))
        return min(choices)[2] if choices else DEFAULT_LANGUAGE

    def strings(self, lang: str) -> dict[str, str]:
        """All strings for `lang`, German filling the gaps."""
        return self._messages[DEFAULT_LANGUAGE] | self._messages.get(lang, {})

    def get(self, lang: str, key: str) -> str:
        return self.strings(lang).get(key, key)
