"""The knowledge base: one YAML file per topic (format: docs/chatbot.md), validated on load, plus a city's
override file (TOML) that adds per topic what the generic files must not invent: url, address, fees, note.

A mistake is reported as "<path>:<line>: <problem>" — the line of the offending key or value, or of
YAML's own problem mark for a syntax error — so staff can fix the file without reading Python.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from sprechstunde.chatbot.resources import line_of
from sprechstunde.chatbot.text import LANGUAGES
from sprechstunde.chatbot.topic import KNOWLEDGE_DIR, KnowledgeBase, KnowledgeError, Loader, Topic
from sprechstunde.chatbot.translations import load_translations

SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
KEYS = {
    "id",
    "office",
    "checked",
    "title",
    "questions",
    "keywords",
    "answer",
    "bring",
    "fees",
    "online",
    "followups",
}
REQUIRED = ("id", "office", "title", "questions", "answer")
CITY_KEYS = {"url", "address", "fees", "note"}


# --- loading --------------------------------------------------------------------------------------------


class _Checker:
    def __init__(self, path: Path, root: yaml.Node | None) -> None:
        self.path = path
        self.root = root
        self.problems: list[str] = []

    def fail(self, where: tuple[Any, ...], problem: str) -> None:
        self.problems.append(f"{self.path}:{line_of(self.root, where)}: {problem}")

    def texts(self, data: Any, where: tuple[Any, ...], *, need: tuple[str, ...] = ()) -> dict[str, str]:
        """{language: non-empty text}."""
        if not isinstance(data, Mapping):
            self.fail(where, f"{'.'.join(map(str, where))} must be a mapping of language → text")
            return {}
        out: dict[str, str] = {}
        for lang, value in data.items():
            if lang not in LANGUAGES:
                self.fail((*where, lang), f"unknown language {lang!r} (known: {', '.join(LANGUAGES)})")
            elif not isinstance(value, str) or not value.strip():
                self.fail((*where, lang), f"{'.'.join(map(str, where))}.{lang} must be a non-empty text")
            else:
                out[lang] = value.strip()
        for lang in need:
            if lang not in out and lang not in data:
                self.fail(where, f"{'.'.join(map(str, where))} needs a {lang!r} text")
        return out

    def lists(self, data: Any, where: tuple[Any, ...], *, need: tuple[str, ...] = ()) -> dict[str, list[str]]:
        """{language: [texts]} (an empty list is allowed: "nothing to bring")."""
        if not isinstance(data, Mapping):
            self.fail(where, f"{'.'.join(map(str, where))} must be a mapping of language → list of texts")
            return {}
        out: dict[str, list[str]] = {}
        for lang, values in data.items():
            if lang not in LANGUAGES:
                self.fail((*where, lang), f"unknown language {lang!r} (known: {', '.join(LANGUAGES)})")
                continue
            if not isinstance(values, list):
                self.fail((*where, lang), f"{'.'.join(map(str, where))}.{lang} must be a list")
                continue
            clean = []
            for index, value in enumerate(values):
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    value = str(value)  # a keyword like U3 or 2026 written without quotes
                if not isinstance(value, str) or not value.strip():
                    self.fail((*where, lang, index), "each entry must be a non-empty text")
                else:
                    clean.append(value.strip())
            out[lang] = clean
        for lang in need:
            if not out.get(lang) and lang not in data:
                self.fail(where, f"{'.'.join(map(str, where))} needs {lang!r} entries")
        return out


def parse_topic(path: Path, text: str) -> Topic:
    """One topic file → Topic; KnowledgeError with every problem found (path and line each)."""
    try:
        root = yaml.compose(text, Loader=Loader)
        data = yaml.load(text, Loader=Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        raise KnowledgeError(
            [f"{path}:{line}: YAML syntax error: {problem}" + (f" ({context})" if context else "")]
        ) from None
    check = _Checker(path, root)
    if not isinstance(data, dict):
        check.fail((), "a topic file must be a YAML mapping (id, office, title, questions, answer, …)")
        raise KnowledgeError(check.problems)
    for key in data:
        if key not in KEYS:
            check.fail((key,), f"unknown key {key!r} (allowed: {', '.join(sorted(KEYS))})")
    for key in REQUIRED:
        if key not in data:
            check.fail((), f"missing required key {key!r}")
    topic_id, office = data.get("id"), data.get("office")
    if "id" in data and (not isinstance(topic_id, str) or topic_id != path.stem):
        check.fail(("id",), f"id must equal the file name {path.stem!r}, not {topic_id!r}")
    if "office" in data and (not isinstance(office, str) or not SLUG.match(office)):
        check.fail(("office",), f"office must be an office id like 'buergertelefon', not {office!r}")
    title = check.texts(data.get("title", {}), ("title",), need=("de",)) if "title" in data else {}
    questions = (
        check.lists(data.get("questions", {}), ("questions",), need=("de",)) if "questions" in data else {}
    )
    answer = check.texts(data.get("answer", {}), ("answer",), need=("de",)) if "answer" in data else {}
    checked = data.get("checked")
    if isinstance(checked, dt.date):
        checked = checked.isoformat()
    if checked is not None and not (isinstance(checked, str) and re.match(r"^\d{4}-\d{2}-\d{2}$", checked)):
        check.fail(("checked",), f"checked must be a date like 2026-12-05, not {checked!r}")
    keywords = check.lists(data["keywords"], ("keywords",)) if data.get("keywords") is not None else {}
    bring = check.lists(data["bring"], ("bring",)) if data.get("bring") is not None else {}
    fees = check.texts(data["fees"], ("fees",)) if data.get("fees") is not None else {}
    online = check.texts(data["online"], ("online",)) if data.get("online") is not None else {}
    followups: dict[str, dict[str, str]] = {}
    if data.get("followups") is not None:
        if not isinstance(data["followups"], Mapping):
            check.fail(("followups",), "followups must be a mapping aspect → {language: text}")
        else:
            for aspect, texts in data["followups"].items():
                if not isinstance(aspect, str) or not SLUG.match(aspect):
                    check.fail(
                        ("followups", aspect), f"followup aspect {aspect!r} must be a word like 'cost'"
                    )
                    continue
                followups[aspect] = check.texts(texts, ("followups", aspect))
    if check.problems:
        raise KnowledgeError(check.problems)
    return Topic(
        id=topic_id,
        office=office,
        title=title,
        questions=questions,
        answer=answer,
        keywords=keywords,
        bring=bring,
        fees=fees,
        online=online,
        followups=followups,
        checked={"de": checked} if checked else {},
    )


def load_knowledge(directory: Path | str = KNOWLEDGE_DIR, *, strict: bool = True) -> KnowledgeBase:
    """Every `*.yaml` in `directory`, with its translations from `directory/<lang>/` merged in
    (missing or stale ones are listed in `KnowledgeBase.stale`; the German text stands in). `strict`:
    any broken file raises KnowledgeError (listing all problems) — what a reload wants, so the old base
    stays in service. Not strict: broken files are left out and their problems returned in
    `KnowledgeBase.problems` (start-up keeps serving the rest)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise KnowledgeError([f"{directory}: not a directory"])
    topics, problems = [], []
    for path in sorted(directory.glob("*.yaml")):
        try:
            topics.append(parse_topic(path, path.read_text(encoding="utf-8")))
        except KnowledgeError as exc:
            problems.extend(exc.problems)
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{path}:1: cannot read: {exc}")
    if not topics and not problems:
        problems.append(f"{directory}: no topic files (*.yaml)")
    base, status = load_translations(KnowledgeBase(topics, str(directory)), directory)
    problems += status.problems + [
        f"{path}:1: no topic {Path(path).stem!r} in {directory}" for path in status.orphans
    ]
    if problems and strict:
        raise KnowledgeError(problems)
    stale = [f"{lang}/{tid}: missing" for tid, lang in status.missing]
    stale += [f"{lang}/{tid}: checked against {had}, German is {now}" for tid, lang, had, now in status.stale]
    return KnowledgeBase(list(base), str(directory), problems, stale)


# --- the city's override file ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CityOverrides:
    """What one city adds to the generic topics: per topic url, address, fees, note."""

    name: str = ""
    topics: dict[str, dict[str, Any]] = field(default_factory=dict)


def _city_text(value: Any, where: str, path: Path) -> dict[str, str]:
    if isinstance(value, str) and value.strip():
        return {"de": value.strip()}
    if (
        isinstance(value, Mapping)
        and value
        and all(lang in LANGUAGES and isinstance(text, str) and text.strip() for lang, text in value.items())
    ):
        return {lang: text.strip() for lang, text in value.items()}
    raise KnowledgeError([f"{path}: {where}: expected a text or a table of language = text"])


def load_city(path: Path | str | None) -> CityOverrides:
    """The override file (chatbot/city.example.toml shows the format); None → no overrides."""
    if path is None:
        return CityOverrides()
    path = Path(path)
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise KnowledgeError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise KnowledgeError([f"{path}: TOML syntax error: {exc}"]) from None
    city = data.get("city", {})
    name = city.get("name", "") if isinstance(city, Mapping) else ""
    topics: dict[str, dict[str, Any]] = {}
    raw = data.get("topics", {})
    if not isinstance(raw, Mapping):
        raise KnowledgeError([f"{path}: topics: expected tables [topics.<topic-id>]"])
    for topic_id, entry in raw.items():
        where = f"topics.{topic_id}"
        if not isinstance(entry, Mapping):
            raise KnowledgeError([f"{path}: {where}: expected a table"])
        unknown = set(entry) - CITY_KEYS
        if unknown:
            raise KnowledgeError(
                [f"{path}: {where}: unknown key {sorted(unknown)[0]!r} (allowed: url, address, fees, note)"]
            )
        clean: dict[str, Any] = {}
        if "url" in entry:
            url = entry["url"]
            if not isinstance(url, str) or not re.match(r"^https?://[^\s<>\"']+$", url):
                raise KnowledgeError([f"{path}: {where}.url: expected an http(s) URL"])
            clean["url"] = url
        for key in ("address", "fees", "note"):
            if key in entry:
                clean[key] = _city_text(entry[key], f"{where}.{key}", path)
        topics[topic_id] = clean
    return CityOverrides(name=str(name), topics=topics)


def apply_city(base: KnowledgeBase, city: CityOverrides) -> KnowledgeBase:
    """The topics with the city's url/address/fees/note merged in (city fees replace the generic
    ranges in the languages the city gives); topics the city does not mention stay generic."""
    if not city.topics:
        return base
    topics = []
    for topic in base:
        extra = city.topics.get(topic.id)
        if extra:
            topic = replace(
                topic,
                url=extra.get("url", topic.url),
                address=extra.get("address", topic.address),
                fees=topic.fees | extra.get("fees", {}),
                note=extra.get("note", topic.note),
            )
        topics.append(topic)
    return KnowledgeBase(topics, base.source, base.problems, base.stale)


def unknown_city_topics(base: KnowledgeBase, city: CityOverrides) -> list[str]:
    return sorted(set(city.topics) - set(base.topics))
