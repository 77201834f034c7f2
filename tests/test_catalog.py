"""The message catalog is complete: every language directory under sprechstunde/locales/ holds every
citizen-facing key German has, with the same {placeholders}; staff pages' keys exist in German and English.

A gap would show German inside a page in another language (the catalog falls back), a placeholder spelt
differently would show "{name}" to a citizen: both fail here, listed per language and file.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from babel import Locale

from sprechstunde.strings import DEFAULT_LANGUAGE, LOCALES_DIR, ORDER, Catalog

# Keys of the staff pages (console, statistics, appointments, login, the consultation panel): de and en.
STAFF_PREFIXES = ("console.", "login.", "consult.", "stats.", "appointments.")
STAFF_LANGUAGES = ("de", "en")
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _files(lang: str) -> dict[str, dict[str, str]]:
    """{file name: its keys} of one language directory."""
    return {
        path.name: tomllib.loads(path.read_text(encoding="utf-8"))
        for path in sorted((LOCALES_DIR / lang).glob("*.toml"))
    }


def _placeholders(text: str) -> list[str]:
    return sorted(PLACEHOLDER.findall(text))


def _where(files: dict[str, dict[str, str]]) -> dict[str, str]:
    return {key: name for name, table in files.items() for key in table}


LANGUAGES = sorted(path.name for path in LOCALES_DIR.iterdir() if path.is_dir())
GERMAN = _files(DEFAULT_LANGUAGE)
GERMAN_KEYS = {key: text for table in GERMAN.values() for key, text in table.items()}
GERMAN_FILE = _where(GERMAN)


def test_the_languages_offered_are_there() -> None:
    # the eight languages of issue 18: de, en, fr, it, pl, tr, ku (Kurmanji), ar
    assert LANGUAGES == sorted(ORDER)
    assert Catalog().languages[0] == DEFAULT_LANGUAGE


@pytest.mark.parametrize("lang", [lang for lang in LANGUAGES if lang != DEFAULT_LANGUAGE])
def test_every_key_in_every_language_with_the_same_placeholders(lang: str) -> None:
    files = _files(lang)
    own = {key: text for table in files.values() for key, text in table.items()}
    problems: dict[str, list[str]] = {}

    def note(file: str, text: str) -> None:
        problems.setdefault(file, []).append(text)

    for key, german in GERMAN_KEYS.items():
        if key.startswith(STAFF_PREFIXES) and lang not in STAFF_LANGUAGES:
            continue
        if key not in own:
            note(GERMAN_FILE[key], f"missing {key}")
        elif not own[key].strip():
            note(GERMAN_FILE[key], f"empty {key}")
        elif sorted(PLACEHOLDER.findall(own[key])) != sorted(PLACEHOLDER.findall(german)):
            note(GERMAN_FILE[key], f"placeholders of {key}: {PLACEHOLDER.findall(own[key])}")
    categories = set(Locale.parse(lang).plural_form.tags) | {"other"}
    for name, table in files.items():
        for key in table:
            base, _, category = key.partition("#")
            if category:  # a plural variant (static/strings.js): of a German key, a category of lang
                if base not in GERMAN_KEYS or category not in categories:
                    note(name, f"plural variant {key}: {lang} has the categories {sorted(categories)}")
                elif _placeholders(table[key]) != _placeholders(GERMAN_KEYS[base]):
                    note(name, f"placeholders of {key}: {PLACEHOLDER.findall(table[key])}")
            elif key not in GERMAN_KEYS:
                note(name, f"not in German: {key}")
    report = "\n".join(f"{lang}/{file}: " + "; ".join(items) for file, items in sorted(problems.items()))
    assert not problems, "\n" + report


def test_german_texts_are_not_empty() -> None:
    assert [key for key, text in GERMAN_KEYS.items() if not text.strip()] == []


def test_every_key_a_template_names_exists_in_german() -> None:
    """t["key"] / t['key'] in the templates: a typo would render the key itself."""
    templates = Path(__file__).parent.parent / "sprechstunde" / "web" / "templates"
    used = {
        key
        for path in templates.glob("*.html")
        for key in re.findall(r"""\bt\[["']([\w.\-]+)["']\]""", path.read_text(encoding="utf-8"))
    }
    known = set(Catalog().strings(DEFAULT_LANGUAGE))
    assert sorted(used - known) == []
