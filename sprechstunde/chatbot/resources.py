"""The chatbot's language data: word lists, patterns and sentences in chatbot/data/*.yaml, checked on load.

Translators and the city's staff edit YAML, not Python. Each file is read once (at the first import of
the module that uses it) and checked against its schema below; a mistake stops the import with
"<path>:<line>: <key>: <problem>" for every problem found — a broken regular expression, a misspelt
language, a translation that lost its {placeholder} or a YAML word read as true/false (`on`, `no`) — so the
file can be fixed without reading Python. The modules that use the data (lexicon, glossary, language,
text, retrieval) keep only the logic.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, Strict, ValidationError

DATA_DIR = Path(__file__).parent / "data"
LANGUAGES = ("de", "en", "fr", "it", "pl", "tr", "ku", "ar")  # the eight chat languages, German first
Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# what the engine says and labels (chatbot.engine, chatbot.service): a file without one cannot serve
MESSAGE_KEYS = (
    "out_of_scope",
    "unsure",
    "did_you_mean",
    "person",
    "unhelpful",
    "offers",
    "german_only",
    "german_parts",
    "rephrase",
    "empty",
    "page_intro",
)
LABEL_KEYS = ("bring", "fees", "online", "more", "address", "note")


class DataError(Exception):
    """A broken data file; each problem reads "<path>:<line>: <key>: <problem>"."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def line_of(node: yaml.Node | None, path: tuple[Any, ...]) -> int:
    """1-based line of the value at `path` (keys and list indices) in a composed YAML tree; the
    deepest node that exists when the path stops early."""
    line = node.start_mark.line + 1 if node is not None else 1
    for step in path:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == step:
                    line = key.start_mark.line + 1
                    node = value
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int) and step < len(node.value):
            node = node.value[step]
            line = node.start_mark.line + 1
        else:
            return line
    return line


# --- field types -----------------------------------------------------------------------------------------


def _word(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    if value != value.lower():
        raise ValueError(f"{value!r} must be lower case (messages are matched in lower case)")
    return value  # not stripped: a trailing space means "whole word only"


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a regular expression: {exc}") from None
    return value


def _number(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("must be a number")
    return value


Text = Annotated[str, Strict()]
Word = Annotated[str, Strict(), AfterValidator(_word)]
Words = list[Word]
Regex = Annotated[str, Strict(), Field(min_length=1), AfterValidator(_regex)]
Name = Annotated[str, Strict(), Field(pattern=r"^[a-z][a-z0-9_]*$")]
Language = Literal["de", "en", "fr", "it", "pl", "tr", "ku", "ar"]
Weight = Annotated[float, BeforeValidator(_number), Field(gt=0)]
Letter = Annotated[str, Strict(), Field(min_length=1, max_length=1), AfterValidator(_word)]


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def problems(self) -> Iterator[tuple[tuple[Any, ...], str]]:
        """Checks across fields: (key path, problem)."""
        return iter(())


# --- the files -------------------------------------------------------------------------------------------


class Person(_File):
    strong: list[Regex]
    nouns: dict[Language, Words]
    verbs: dict[Language, Words]
    want: Words
    polite: Words
    arabic_nouns: Words
    arabic_verbs: Words


class LexiconData(_File):
    """data/lexicon.yaml: asking for a person, follow-up aspects, out of scope, "did not help", slang."""

    person: Person
    aspects: dict[Name, Words]
    arabic_aspects: dict[Name, Words]
    continuation: Regex
    anaphora: Words
    followup_words: dict[Language, Words]
    out_of_scope: dict[Name, Words]
    arabic_out_of_scope: Words
    short_no: Regex
    unhelpful: list[Regex]
    colloquial_de: dict[Word, Word]

    def problems(self) -> Iterator[tuple[tuple[Any, ...], str]]:
        for aspect in self.arabic_aspects:
            if aspect not in self.aspects:
                known = ", ".join(self.aspects)
                yield ("arabic_aspects", aspect), f"unknown aspect {aspect!r} (aspects: {known})"


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


class SentencesData(_File):
    """data/sentences.yaml: the bot's own sentences (an empty text says nothing) and answer labels."""

    messages: dict[Name, dict[Language, Text]]
    labels: dict[Language, dict[Name, Text]]

    def problems(self) -> Iterator[tuple[tuple[Any, ...], str]]:
        for key in MESSAGE_KEYS:
            if key not in self.messages:
                yield ("messages",), f"missing message {key!r}"
        for key, table in self.messages.items():
            if "de" not in table:
                yield ("messages", key), "needs a German ('de') text: it stands in for missing languages"
                continue
            try:
                reference: set[str] | None = _fields(table["de"])
            except ValueError:
                reference = None  # reported below, as the German text's own problem
            for lang, text in table.items():
                try:
                    fields = _fields(text)
                except ValueError as exc:
                    yield ("messages", key, lang), f"broken {{placeholder}}: {exc}"
                    continue
                if reference is not None and fields != reference:
                    problem = f"placeholders {sorted(fields)} differ from German's {sorted(reference)}"
                    yield ("messages", key, lang), problem
        german = self.labels.get("de")
        if german is None:
            yield ("labels",), "needs the German ('de') labels"
            return
        for key in LABEL_KEYS:
            if key not in german:
                yield ("labels", "de"), f"missing label {key!r}"
        for lang, table in self.labels.items():
            for key in german:
                if key not in table:
                    yield ("labels", lang), f"missing label {key!r} (every language has all of German's)"


class GlossaryData(_File):
    """data/glossary.yaml: German target words → the foreign word beginnings that mean them."""

    concepts: dict[Word, Words]
    arabic: dict[Word, Words]


class GermanSeparable(_File):
    prefixes: Words
    particles: Words


class LanguageData(_File):
    """data/language.yaml: letters and function words per language, stopwords, German verb particles."""

    letters: dict[Letter, tuple[Language, Weight]]
    markers: dict[Language, Words]
    stopwords: dict[Language, Words]
    german_separable: GermanSeparable
    arabic_prefixes: Words

    def problems(self) -> Iterator[tuple[tuple[Any, ...], str]]:
        if "de" not in self.stopwords:
            yield ("stopwords",), "needs the German ('de') stopwords: citizens mix German into every language"


# --- loading ---------------------------------------------------------------------------------------------

Model = TypeVar("Model", bound=_File)


def _where(path: tuple[Any, ...]) -> str:
    return ".".join(str(step) for step in path if step != "[key]") or "(top)"


def load_file(path: Path, model: type[Model]) -> Model:
    """`path` checked against `model`; DataError with every problem (path, line and key each)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError([f"{path}:1: cannot read: {exc}"]) from None
    try:
        root = yaml.compose(text, Loader=Loader)
        data = yaml.load(text, Loader=Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or exc
        raise DataError([f"{path}:{line}: YAML syntax error: {problem}"]) from None
    if not isinstance(data, dict):
        raise DataError([f"{path}:1: must be a YAML mapping ({', '.join(model.model_fields)})"])
    try:
        parsed = model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = tuple(error["loc"])
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] in ("string_type", "literal_error") and isinstance(error.get("input"), bool):
                message += " (YAML reads yes/no/on/off/true/false as a truth value: quote the word)"
            problems.append(f"{path}:{line_of(root, where)}: {_where(where)}: {message}")
        raise DataError(problems) from None
    problems = [
        f"{path}:{line_of(root, where)}: {_where(where)}: {problem}" for where, problem in parsed.problems()
    ]
    if problems:
        raise DataError(problems)
    return parsed


@cache
def lexicon() -> LexiconData:
    return load_file(DATA_DIR / "lexicon.yaml", LexiconData)


@cache
def sentences() -> SentencesData:
    return load_file(DATA_DIR / "sentences.yaml", SentencesData)


@cache
def glossary() -> GlossaryData:
    return load_file(DATA_DIR / "glossary.yaml", GlossaryData)


@cache
def language() -> LanguageData:
    return load_file(DATA_DIR / "language.yaml", LanguageData)
