"""The message catalog: every text a person reads — pages, the call, mails, calendar entries — in every
language the city offers, from one place (sprechstunde/locales/<language>/<area>.toml).

German is the source: each language directory holds the same keys as locales/de/, with the same
{placeholders} (tests/test_catalog.py fails the suite otherwise). A key a language lacks falls back to
German, so a gap never shows a raw key. The short weekday names ("day.mon" …) are CLDR's (l10n), for
every language the directories have. The catalog lives in the kernel so that domains (the booking mails)
and the web pages read the same texts.
"""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path

from sprechstunde.l10n import weekday_abbreviations

LOCALES_DIR = Path(__file__).parent / "locales"
DEFAULT_LANGUAGE = "de"
# the order of the language switcher: German, then the city's most asked-for languages
ORDER = ("de", "en", "fr", "it", "pl", "tr", "ku", "ar")


class Catalog:
    """The texts of every language under `directory` (one sub-directory per language code)."""

    def __init__(self, directory: Path = LOCALES_DIR) -> None:
        self._messages: dict[str, dict[str, str]] = {}
        for folder in sorted(path for path in directory.iterdir() if path.is_dir()):
            table: dict[str, str] = {}
            for path in sorted(folder.glob("*.toml")):
                with path.open("rb") as fh:
                    table.update(tomllib.load(fh))
            days = {f"day.{key}": name for key, name in weekday_abbreviations(folder.name).items()}
            self._messages[folder.name] = days | table
        rank = {lang: index for index, lang in enumerate(ORDER)}
        self.languages = tuple(sorted(self._messages, key=lambda lang: (rank.get(lang, len(ORDER)), lang)))

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

    def own(self, lang: str) -> dict[str, str]:
        """The strings `lang` itself defines (no German fallback): what the completeness test reads."""
        return dict(self._messages.get(lang, {}))

    def strings(self, lang: str) -> dict[str, str]:
        """All strings for `lang`, German filling the gaps."""
        return self._messages[DEFAULT_LANGUAGE] | self._messages.get(lang, {})

    def get(self, lang: str, key: str) -> str:
        return self.strings(lang).get(key, key)


@cache
def catalog() -> Catalog:
    """The shipped catalog, read once per process."""
    return Catalog()
