"""The city file (`--city FILE`, SPRECHSTUNDE_CITY): what a city publishes about itself — the accessibility
statement (§ 12b BGG / BITV 2.0 § 7, after the EU model statement of Implementing Decision (EU) 2018/1523),
the Leichte Sprache and sign-language pages, the privacy notice and the imprint.

It is the same city file the chatbot reads its `[topics.*]` from (chatbot/city.example.toml): one file per
city, each part reading its own tables. It is read once at start-up and checked completely (pydantic), so a
mistake stops the server with "<file>: <field>: <problem>" instead of showing a broken statement.

Texts are German (a plain string) or a table of language = text; a page shows the page language's text
where the city gave one and otherwise the German one, marked `lang="de"` with a note in the page language.
Texts are plain paragraphs — one per line, "- " starts a list item — and are escaped like every other text
(no Markdown, no HTML: a city's text cannot inject markup). Without a city file the server shows the
example city (city.example.toml) and says on every city page that it is an example.

What the shipped defaults (defaults.toml) say — the Leichte Sprache explanation, the privacy notice's
account of what Sprechstunde stores — a city keeps unless it writes its own; the privacy notice's times
come from the running configuration ({retention_days} …), so the notice stays true to the settings.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from sprechstunde.strings import DEFAULT_LANGUAGE, ORDER

HERE = Path(__file__).parent
EXAMPLE_PATH = HERE / "city.example.toml"
DEFAULTS_PATH = HERE / "defaults.toml"
MAX_TEXT = 20_000
URL = re.compile(r"^https?://[^\s<>\"'\\]+$")
EMAIL = re.compile(r"^[^@\s<>\"']+@[^@\s<>\"']+\.[^@\s<>\"']+$")
VIDEO_TYPES = {".mp4": "video/mp4", ".webm": "video/webm", ".ogv": "video/ogg", ".m4v": "video/mp4"}
STATUSES = ("vollstaendig", "teilweise", "nicht")
# Leichte Sprache: how long words are split — "Video·beratung" (Mediopunkt) or "Video-Beratung"
SEPARATORS = ("mediopunkt", "bindestrich", "keiner")


class CityConfigError(ValueError):
    """The city file is wrong; the message names the file and every field with a problem."""

    def __init__(self, source: str, problems: Iterable[str]) -> None:
        self.problems = [f"{source}: {problem}" for problem in problems]
        super().__init__("\n".join(self.problems))


def _localized(value: Any) -> dict[str, str]:
    """A text: German as a plain string, or a table language = text that includes German (the source)."""
    if isinstance(value, str):
        value = {DEFAULT_LANGUAGE: value}
    if not isinstance(value, Mapping):
        raise ValueError("expected a text or a table of language = text")
    clean = {}
    for lang, text in value.items():
        if lang not in ORDER:
            raise ValueError(f"unknown language {lang!r} (known: {', '.join(ORDER)})")
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{lang}: expected a text that is not empty")
        if len(text) > MAX_TEXT:
            raise ValueError(f"{lang}: at most {MAX_TEXT} characters")
        clean[lang] = text.strip()
    if DEFAULT_LANGUAGE not in clean:
        raise ValueError("the German text (de) is missing; German is the source of every text")
    return clean


def _url(value: Any) -> str:
    if not isinstance(value, str) or not URL.match(value):
        raise ValueError("expected an http(s) URL")
    return value


def _email(value: Any) -> str:
    if not isinstance(value, str) or not EMAIL.match(value.strip()):
        raise ValueError("expected an e-mail address")
    return value.strip()


Localized = Annotated[dict[str, str], BeforeValidator(_localized)]
Url = Annotated[str, BeforeValidator(_url)]
Email = Annotated[str, BeforeValidator(_email)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CityInfo(Strict):
    name: str = Field(min_length=1, max_length=200)
    url: Url | None = None  # the city's own website


class Section(Strict):
    heading: Localized
    text: Localized


class Conciliation(Strict):
    """The conciliation body: for federal bodies the Schlichtungsstelle nach § 16 BGG, for a Land or a
    municipality the body the Land's law names."""

    name: Localized
    address: Localized
    url: Url | None = None
    email: Email | None = None
    phone: str | None = Field(default=None, max_length=60)


class Accessibility(Strict):
    status: Literal["vollstaendig", "teilweise", "nicht"]
    scope: Localized | None = None  # what the statement covers; default: this service at its public URL
    prepared: date  # when the statement was made
    reviewed: date  # when it was last checked
    method: Literal["selbstbewertung", "pruefung"] = "selbstbewertung"  # self-assessment / third party
    method_note: Localized | None = None
    gaps: list[Localized] = Field(default_factory=list)  # the content that is not accessible, and why
    alternatives: Localized | None = None  # accessible alternatives to that content
    feedback_office: str = Field(min_length=1)  # the office whose tickets receive the feedback
    contact_required: bool = True  # the office answers, so it needs an e-mail address or phone number
    contact: Localized | None = None  # other ways to reach the contact point (mail, phone, address)
    conciliation: Conciliation
    enforcement: Localized | None = None  # default: defaults.toml

    @model_validator(mode="after")
    def _consistent(self) -> Accessibility:
        if self.reviewed < self.prepared:
            raise ValueError("reviewed: the last review cannot be before the statement was prepared")
        if self.status == "vollstaendig" and self.gaps:
            raise ValueError('status "vollstaendig" (fully compliant) with known gaps: use "teilweise"')
        if self.status != "vollstaendig" and not self.gaps:
            raise ValueError(f'status "{self.status}" needs the list of gaps (gaps = [...])')
        return self


class EasyLanguage(Strict):
    separator: Literal["mediopunkt", "bindestrich", "keiner"] = "mediopunkt"
    sections: list[Section] | None = None  # default: the shipped explanation (defaults.toml)


class SignLanguage(Strict):
    video: str | None = None  # an http(s) URL, or a file under the data directory
    captions: str | None = None  # a WebVTT file (URL or file under the data directory)
    transcript: Localized | None = None  # the text alternative: what the video says
    contact: Localized | None = None  # how deaf people reach the office (e-mail, SMS, fax, an interpreter)

    @model_validator(mode="after")
    def _complete(self) -> SignLanguage:
        if self.video and not self.transcript:
            raise ValueError("a video needs its text alternative (transcript = ...)")
        if self.captions and not self.video:
            raise ValueError("captions without a video")
        return self


class Privacy(Strict):
    controller: Localized  # the controller (Art. 13 (1) a GDPR): name and address
    officer: Localized  # the data protection officer's contact (Art. 13 (1) b)
    authority: Localized  # the supervisory authority for complaints (Art. 13 (2) d)
    sections: list[Section] | None = None  # default: the shipped account of what Sprechstunde stores


class Imprint(Strict):
    sections: list[Section] = Field(min_length=1)


class CityFile(Strict):
    city: CityInfo
    topics: dict[str, Any] = Field(default_factory=dict)  # the chatbot's (chatbot/knowledge.py load_city)
    accessibility: Accessibility
    easy_language: EasyLanguage = EasyLanguage()
    sign_language: SignLanguage = SignLanguage()
    privacy: Privacy
    imprint: Imprint


class Defaults(Strict):
    """The shipped texts a city keeps unless it writes its own (defaults.toml)."""

    enforcement: Localized
    easy_language: list[Section]
    privacy: list[Section]


# --- what a page shows ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    kind: Literal["p", "ul"]
    lines: tuple[str, ...]


@dataclass(frozen=True)
class Shown:
    """A text as one page shows it: in `lang` (the page's language, or German where the city gave none)."""

    lang: str
    blocks: tuple[Block, ...]

    @property
    def plain(self) -> str:
        return " ".join(line for block in self.blocks for line in block.lines)


def blocks(text: str) -> tuple[Block, ...]:
    """Paragraphs and lists of a plain text: each line a paragraph, lines starting "- " one list."""
    found: list[Block] = []
    items: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("- ") or line == "-":
            items.append(line[1:].strip())
            continue
        if items:
            found.append(Block("ul", tuple(item for item in items if item)))
            items = []
        if line:
            found.append(Block("p", (line,)))
    if items:
        found.append(Block("ul", tuple(item for item in items if item)))
    return tuple(found)


def _split_words(text: str, separator: str) -> str:
    """Leichte Sprache's long words, written "Video|beratung" in the file: "Video·beratung",
    "Video-Beratung" or "Videoberatung" as the city chose."""
    if separator == "mediopunkt":
        return text.replace("|", "·")
    if separator == "bindestrich":
        return re.sub(r"\|(\w)", lambda m: "-" + m.group(1).upper(), text)
    return text.replace("|", "")


@dataclass(frozen=True)
class LocalFile:
    """A sign-language video or its captions, as a path under the data directory or a URL."""

    url: str  # what the page links: the URL, or the route that serves the file
    path: Path | None = None  # the file, when it lies under the data directory
    media_type: str = ""

    @property
    def origin(self) -> str | None:
        """The other site the page must allow media from (CSP), None for our own."""
        if self.path is not None:
            return None
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"


@dataclass(frozen=True)
class CityPages:
    """The checked city file with the shipped defaults, and how each page picks its texts."""

    file: CityFile
    defaults: Defaults
    source: str
    example: bool = False  # no --city: the example city is shown, and every page says so
    video: LocalFile | None = None
    captions: LocalFile | None = None
    values: dict[str, str] = field(default_factory=dict)  # {placeholder}s in texts: retention times …

    @property
    def name(self) -> str:
        return self.file.city.name

    def text(self, value: Mapping[str, str] | None, lang: str, separator: str | None = None) -> Shown | None:
        """`value` in the page language where the city gave it, else German; placeholders filled."""
        if not value:
            return None
        shown = lang if lang in value else DEFAULT_LANGUAGE
        text = value[shown]
        for name, filled in self.values.items():
            text = text.replace("{" + name + "}", filled)
        if separator is not None:
            text = _split_words(text, separator)
        return Shown(shown, blocks(text))

    def sections(
        self, given: list[Section] | None, default: list[Section], lang: str, separator: str | None = None
    ) -> list[tuple[Shown, Shown]]:
        chosen = given if given is not None else default
        found = []
        for section in chosen:
            heading, text = (
                self.text(section.heading, lang, separator),
                self.text(section.text, lang, separator),
            )
            assert heading is not None and text is not None  # Localized is never empty
            found.append((heading, text))
        return found


# --- loading --------------------------------------------------------------------------------------------


def _problems(exc: ValidationError) -> list[str]:
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "-"
        message = error["msg"].removeprefix("Value error, ")
        problems.append(f"{where}: {message}")
    return problems


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CityConfigError(str(path), [f"cannot read: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError:
        raise CityConfigError(str(path), ["not UTF-8 text"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise CityConfigError(str(path), [f"not valid TOML: {exc}"]) from None


def _media(value: str | None, where: str, data_dir: Path, route: str, types: Mapping[str, str]) -> LocalFile:
    """A URL as given, or a file under the data directory (checked now: it exists, it does not leave the
    directory, its type is one a browser plays)."""
    assert value is not None
    if URL.match(value):
        return LocalFile(value)
    if "://" in value:
        raise ValueError(f"{where}: expected an http(s) URL or a file under the data directory")
    base = data_dir.resolve()
    path = (base / value).resolve()
    if not path.is_relative_to(base):
        raise ValueError(f"{where}: the file must lie under the data directory {base}")
    media_type = types.get(path.suffix.lower())
    if media_type is None:
        raise ValueError(f"{where}: a {'/'.join(sorted(types))} file, not {path.suffix or 'no suffix'!r}")
    if not path.is_file():
        raise ValueError(f"{where}: no such file {path}")
    return LocalFile(route, path, media_type)


def load_defaults(path: Path = DEFAULTS_PATH) -> Defaults:
    try:
        return Defaults.model_validate(_read(path))
    except ValidationError as exc:
        raise CityConfigError(str(path), _problems(exc)) from None


def load_city_pages(
    path: Path | str | None,
    *,
    data_dir: Path,
    offices: Iterable[str],
    values: Mapping[str, str] | None = None,
) -> CityPages:
    """The city file at `path` (None: the example city), checked against the offices there are and the
    files under `data_dir`. CityConfigError lists every problem."""
    example = path is None
    source = Path(path) if path is not None else EXAMPLE_PATH
    raw = _read(source)
    known = list(offices)
    try:
        city = CityFile.model_validate(raw)
    except ValidationError as exc:
        raise CityConfigError(str(source), _problems(exc)) from None
    problems = []
    if city.accessibility.feedback_office not in known:
        if example and known:
            # the example names a demo office; with the city's own offices file, the first office answers
            city = city.model_copy(
                update={"accessibility": city.accessibility.model_copy(update={"feedback_office": known[0]})}
            )
        else:
            problems.append(
                f"accessibility.feedback_office: there is no office {city.accessibility.feedback_office!r} "
                f"(offices: {', '.join(known) or 'none'})"
            )
    video = captions = None
    sign = city.sign_language
    try:
        if sign.video:
            video = _media(
                sign.video, "sign_language.video", data_dir, "/gebaerdensprache/video", VIDEO_TYPES
            )
        if sign.captions:
            captions = _media(
                sign.captions,
                "sign_language.captions",
                data_dir,
                "/gebaerdensprache/untertitel.vtt",
                {".vtt": "text/vtt"},
            )
    except ValueError as exc:
        problems.append(str(exc))
    if problems:
        raise CityConfigError(str(source), problems)
    return CityPages(
        file=city,
        defaults=load_defaults(),
        source=str(source),
        example=example,
        video=video,
        captions=captions,
        values={"city": city.city.name, **(values or {})},
    )
