"""The topics' answers in the other seven languages, each checked against one revision of the German text.

German is the source: `knowledge/<id>.yaml` holds the German answer (and the questions and keywords of
every language, which only serve retrieval). Each other language lives in `knowledge/<lang>/<id>.yaml`:

    source: 3f2a9c1b7d4e   # the German revision this text was checked against
    checked: 2026-12-05    # when a person last checked it (shown under the answer)
    title: …
    answer: …
    bring: [ … ]           # present when the German file has it
    fees: …
    online: …
    followups: {cost: …}   # the same aspects as the German file

The German revision is a short hash of the German texts (`german_revision`), so it changes by itself when
someone edits the German answer — no number to remember to bump. A translation whose `source` differs is
*stale*: it is not served (the citizen gets the German text with a note and the offer of an advisor who
speaks their language) and the test suite fails (tests/test_chatbot_translations.py), as it fails for a
missing language. `python -m sprechstunde.chatbot.translations` lists what is missing or stale, with the
revision to write into `source:` once a translation has been checked.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from sprechstunde.chatbot.resources import line_of
from sprechstunde.chatbot.text import LANGUAGES
from sprechstunde.chatbot.topic import KNOWLEDGE_DIR, KnowledgeBase, KnowledgeError, Loader, Topic

TRANSLATED = tuple(lang for lang in LANGUAGES if lang != "de")
KEYS = {"source", "checked", "title", "answer", "bring", "fees", "online", "followups"}
TEXT_PARTS = ("title", "answer", "fees", "online")


def german_revision(topic: Topic) -> str:
    """12 hex digits of SHA-256 over the German texts a translation renders (not questions/keywords)."""
    german = {
        "title": topic.title.get("de"),
        "answer": topic.answer.get("de"),
        "bring": topic.bring.get("de"),
        "fees": topic.fees.get("de"),
        "online": topic.online.get("de"),
        "followups": {aspect: texts.get("de") for aspect, texts in sorted(topic.followups.items())},
    }
    canonical = json.dumps(german, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]


@dataclass(frozen=True)
class Translation:
    topic: str
    language: str
    source: str
    checked: str
    title: str
    answer: str
    bring: list[str] | None = None
    fees: str | None = None
    online: str | None = None
    followups: dict[str, str] = field(default_factory=dict)


def parse_translation(path: Path, text: str, german: Topic) -> Translation:
    """One `knowledge/<lang>/<id>.yaml` → Translation; KnowledgeError listing every problem (path:line)."""
    language = path.parent.name
    try:
        root = yaml.compose(text, Loader=Loader)
        data = yaml.load(text, Loader=Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        raise KnowledgeError([f"{path}:{line}: YAML syntax error: {getattr(exc, 'problem', exc)}"]) from None
    problems: list[str] = []

    def fail(where: tuple[Any, ...], problem: str) -> None:
        problems.append(f"{path}:{line_of(root, where)}: {problem}")

    if not isinstance(data, dict):
        raise KnowledgeError([f"{path}:1: a translation must be a YAML mapping (source, checked, title, …)"])
    for key in data:
        if key not in KEYS:
            fail((key,), f"unknown key {key!r} (allowed: {', '.join(sorted(KEYS))})")

    def text_of(key: str, value: Any, where: tuple[Any, ...]) -> str | None:
        if isinstance(value, str) and value.strip():
            return value.strip()
        fail(where, f"{key} must be a non-empty text")
        return None

    source = data.get("source")
    if not isinstance(source, str) or len(source) != 12:
        fail(("source",), "source must be the 12-digit German revision this text was checked against")
    checked = data.get("checked")
    if isinstance(checked, dt.date):
        checked = checked.isoformat()
    if not isinstance(checked, str):
        fail(("checked",), "checked must be a date like 2026-12-05")
    texts: dict[str, str | None] = {}
    for part in TEXT_PARTS:
        has_german = bool(getattr(german, part).get("de"))
        if part in data:
            if not has_german:
                fail((part,), f"{part}: the German file has none")
            texts[part] = text_of(part, data[part], (part,))
        elif has_german:
            fail((), f"missing {part!r} (the German file has one)")
    bring = None
    if "bring" in data:
        value = data["bring"]
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            fail(("bring",), "bring must be a list of non-empty texts")
        else:
            bring = [v.strip() for v in value]
    elif german.bring.get("de"):
        fail((), "missing 'bring' (the German file has one)")
    followups: dict[str, str] = {}
    raw = data.get("followups") or {}
    if not isinstance(raw, Mapping):
        fail(("followups",), "followups must be a mapping aspect → text")
        raw = {}
    wanted = {aspect for aspect, texts_ in german.followups.items() if texts_.get("de")}
    for aspect, value in raw.items():
        if aspect not in wanted:
            fail(("followups", aspect), f"followup {aspect!r}: the German file has none")
        elif (clean := text_of(f"followups.{aspect}", value, ("followups", aspect))) is not None:
            followups[aspect] = clean
    for aspect in sorted(wanted - set(raw)):
        fail(("followups",), f"missing followup {aspect!r} (the German file has one)")
    if problems:
        raise KnowledgeError(problems)
    return Translation(
        topic=german.id,
        language=language,
        source=str(source),
        checked=str(checked),
        title=str(texts["title"]),
        answer=str(texts["answer"]),
        bring=bring,
        fees=texts.get("fees"),
        online=texts.get("online"),
        followups=followups,
    )


@dataclass
class Status:
    """What `load_translations` found: per topic and language, fine / missing / stale / broken."""

    missing: list[tuple[str, str]] = field(default_factory=list)  # (topic, language)
    stale: list[tuple[str, str, str, str]] = field(default_factory=list)  # (topic, language, had, now)
    problems: list[str] = field(default_factory=list)  # "<path>:<line>: <problem>"
    orphans: list[str] = field(default_factory=list)  # files of topics that do not exist

    @property
    def complete(self) -> bool:
        return not (self.missing or self.stale or self.problems or self.orphans)


def load_translations(
    base: KnowledgeBase, directory: Path | str | None = None
) -> tuple[KnowledgeBase, Status]:
    """`base` with every current translation merged into its topics' per-language texts; missing,
    stale or broken translations are left out (the German text stands in) and reported in Status."""
    directory = Path(directory or base.source or KNOWLEDGE_DIR)
    status = Status()
    topics: list[Topic] = []
    for topic in base:
        revision = german_revision(topic)
        merged = {
            "title": dict(topic.title),
            "answer": dict(topic.answer),
            "bring": dict(topic.bring),
            "fees": dict(topic.fees),
            "online": dict(topic.online),
        }
        followups = {aspect: dict(texts) for aspect, texts in topic.followups.items()}
        checked = dict(topic.checked)
        for language in TRANSLATED:
            path = directory / language / f"{topic.id}.yaml"
            if not path.is_file():
                status.missing.append((topic.id, language))
                continue
            try:
                translation = parse_translation(path, path.read_text(encoding="utf-8"), topic)
            except KnowledgeError as exc:
                status.problems.extend(exc.problems)
                continue
            except (OSError, UnicodeDecodeError) as exc:
                status.problems.append(f"{path}:1: cannot read: {exc}")
                continue
            if translation.source != revision:
                status.stale.append((topic.id, language, translation.source, revision))
                continue
            merged["title"][language] = translation.title
            merged["answer"][language] = translation.answer
            if translation.bring is not None:
                merged["bring"][language] = translation.bring
            for part in ("fees", "online"):
                if getattr(translation, part):
                    merged[part][language] = getattr(translation, part)
            for aspect, text in translation.followups.items():
                followups[aspect][language] = text
            checked[language] = translation.checked
        topics.append(replace(topic, followups=followups, checked=checked, revision=revision, **merged))
    known = set(base.topics)
    for language in TRANSLATED:
        folder = directory / language
        if folder.is_dir():
            status.orphans.extend(str(p) for p in sorted(folder.glob("*.yaml")) if p.stem not in known)
    return KnowledgeBase(topics, base.source, base.problems, base.stale), status


def main(argv: list[str] | None = None) -> int:
    """List missing and stale translations with the German revision to write into `source:`."""
    from sprechstunde.chatbot.knowledge import load_knowledge

    parser = argparse.ArgumentParser(
        prog="python -m sprechstunde.chatbot.translations", description=main.__doc__
    )
    parser.add_argument("directory", nargs="?", type=Path, default=KNOWLEDGE_DIR)
    parser.add_argument("--language", choices=TRANSLATED, help="only this language")
    parser.add_argument("--revisions", action="store_true", help="print every topic's German revision")
    args = parser.parse_args(argv)
    base = load_knowledge(args.directory)
    if args.revisions:
        for topic in base:
            print(f"{topic.id}\t{german_revision(topic)}")
        return 0
    _, status = load_translations(base, args.directory)
    wanted = (lambda lang: lang == args.language) if args.language else (lambda lang: True)
    lines = [f"missing: {args.directory}/{lang}/{tid}.yaml" for tid, lang in status.missing if wanted(lang)]
    lines += [
        f"stale: {args.directory}/{lang}/{tid}.yaml checked against {had}, German is now {now}"
        for tid, lang, had, now in status.stale
        if wanted(lang)
    ]
    lines += [f"broken: {problem}" for problem in status.problems]
    lines += [f"no such topic: {path}" for path in status.orphans]
    languages = [args.language] if args.language else TRANSLATED
    print("\n".join(lines) or f"all {len(base)} topics complete in {', '.join(languages)}")
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main())
