"""What the chatbot knows, as data: a topic (German source plus whatever languages it has) and the
knowledge base of topics in service. Loading and checking live in chatbot/knowledge.py (the German
files, the city's overrides) and chatbot/translations.py (the other languages).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

KNOWLEDGE_DIR = Path(__file__).parent / "knowledge"
Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class KnowledgeError(Exception):
    """One or more broken files; each problem reads "<path>:<line>: <problem>"."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Topic:
    id: str
    office: str
    title: dict[str, str]
    questions: dict[str, list[str]]
    answer: dict[str, str]
    keywords: dict[str, list[str]] = field(default_factory=dict)
    bring: dict[str, list[str]] = field(default_factory=dict)
    fees: dict[str, str] = field(default_factory=dict)
    online: dict[str, str] = field(default_factory=dict)
    followups: dict[str, dict[str, str]] = field(default_factory=dict)
    # from the city override file
    url: str | None = None
    address: dict[str, str] = field(default_factory=dict)
    note: dict[str, str] = field(default_factory=dict)
    # language → the day a person last checked that language's text (German: the `checked` key of the
    # topic file; the others: their translation file); shown under the answer
    checked: dict[str, str] = field(default_factory=dict)
    revision: str = ""  # the German revision (chatbot/translations.py german_revision)

    def text(self, part: str, language: str) -> str | None:
        """A per-language text field in `language`, None if the file has none in that language."""
        value = getattr(self, part).get(language)
        return value or None


class KnowledgeBase:
    """The topics in service; immutable, replaced as a whole on reload."""

    def __init__(
        self,
        topics: list[Topic],
        source: str = "",
        problems: list[str] | None = None,
        stale: list[str] | None = None,
    ) -> None:
        self.topics = {topic.id: topic for topic in topics}
        self.source = source
        # files left out at start-up (not strict), "<path>:<line>: <problem>" each
        self.problems = problems or []
        # translations not served because missing or older than their German source ("<lang>/<id>: …")
        self.stale = stale or []

    def __iter__(self) -> Iterator[Topic]:
        return iter(self.topics.values())

    def __len__(self) -> int:
        return len(self.topics)

    def get(self, topic_id: str | None) -> Topic | None:
        return self.topics.get(topic_id) if topic_id else None
