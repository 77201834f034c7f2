"""A city's own service pages as a second source of answers.

`sprechstunde kb import-pages FILE.json` reads a JSON list of pages (`title`, `content` as HTML, `url`,
optional `language`, `id`, `available_languages`), turns the HTML into sentences and stores one record
per page through the storage port (kind "chatbot-page"), so every server process — also with Redis —
answers from the same pages. Each process builds its `PageIndex` from the store and rebuilds it when the
import bumps the version record.

Answers quote the page's best-matching sentences and link the page; nothing is paraphrased, so nothing
is invented. Pages that are translations of each other share a `group` (the id of the German version
where the import file says so), which is what "the right page" means across languages.
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

from sprechstunde.chatbot.retrieval import BM25
from sprechstunde.chatbot.text import LANGUAGES, STOPWORDS, stem, surface, words

PAGE_KIND = "chatbot-page"
VERSION_KIND = "chatbot-pages"
VERSION_KEY = "version"
MAX_PAGES = 5000
MAX_PAGE_CHARS = 100_000
TITLE_REPEAT = 3
PAGE_B = 0.75  # Okapi's usual length normalisation: pages differ in length far more than topics
BLOCKS = {
    "p",
    "li",
    "div",
    "br",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "tr",
    "td",
    "th",
    "section",
    "ul",
    "ol",
    "table",
    "blockquote",
    "dt",
    "dd",
    "article",
    "header",
    "footer",
}
SKIP = {"script", "style", "noscript", "template"}
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-ZÄÖÜ0-9„\"(])")


class PageImportError(Exception):
    pass


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self._current: list[str] = []
        self._skip = 0

    def _flush(self) -> None:
        line = re.sub(r"\s+", " ", "".join(self._current)).strip()
        if line:
            self.lines.append(line)
        self._current = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in SKIP:
            self._skip += 1
        elif tag in BLOCKS:
            self._flush()

    def handle_endtag(self, tag: str) -> None:
        if tag in SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag in BLOCKS:
            self._flush()

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self._current.append(data)

    def close(self) -> None:
        super().close()
        self._flush()


def html_sentences(html: str) -> list[str]:
    """Plain sentences of an HTML fragment: tags dropped, blocks and sentences split, entities decoded."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    sentences = []
    for line in parser.lines:
        sentences.extend(part.strip() for part in SENTENCE_END.split(line) if part.strip())
    return sentences


def _translations(value: Any) -> dict[str, str]:
    """available_languages → {language: page id}; the OMoS files hold it as a Python-literal string."""
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return {}
    if not isinstance(value, dict):
        return {}
    out = {}
    for lang, entry in value.items():
        if isinstance(entry, dict) and entry.get("id") is not None:
            out[str(lang)] = str(entry["id"])
    return out


def _language_of(page: dict[str, Any], default: str | None) -> str | None:
    lang = page.get("language")
    if isinstance(lang, str) and lang in LANGUAGES:
        return lang
    match = re.search(r"/(de|en|fr|it|pl|tr|ku|ar)/", str(page.get("path") or page.get("url") or ""))
    return match.group(1) if match else default


def parse_pages(data: Any, source: str, language: str | None = None) -> list[dict[str, Any]]:
    """The import file's pages as store records; PageImportError names the first bad page."""
    if isinstance(data, dict) and isinstance(data.get("pages"), list):
        data = data["pages"]
    if not isinstance(data, list):
        raise PageImportError('the file must hold a JSON list of pages (or {"pages": [...]})')
    if len(data) > MAX_PAGES:
        raise PageImportError(f"at most {MAX_PAGES} pages per import")
    records = []
    for number, page in enumerate(data, 1):
        if not isinstance(page, dict):
            raise PageImportError(f"page {number}: expected an object")
        title, content, url = page.get("title"), page.get("content", ""), page.get("url")
        if not isinstance(title, str) or not title.strip():
            raise PageImportError(f"page {number}: missing title")
        if not isinstance(content, str) or len(content) > MAX_PAGE_CHARS:
            raise PageImportError(
                f"page {number}: content must be HTML text of at most {MAX_PAGE_CHARS} chars"
            )
        if not isinstance(url, str) or not re.match(r"^https?://[^\s<>\"']+$", url):
            raise PageImportError(f"page {number}: url must be an http(s) URL")
        lang = _language_of(page, language)
        if lang is None:
            raise PageImportError(f'page {number}: no language (give "language" or --language)')
        page_id = str(page.get("id") or url)
        translations = _translations(page.get("available_languages"))
        sentences = html_sentences(content)
        if not sentences:
            continue  # a menu page without text answers nothing
        records.append(
            {
                "source": source,
                "id": page_id,
                "group": translations.get("de", page_id) if lang != "de" else page_id,
                "language": lang,
                "title": title.strip(),
                "url": url,
                "sentences": sentences,
            }
        )
    return records


def load_import_file(path: str) -> Any:
    with open(path, encoding="utf-8") as fh:
        try:
            return json.load(fh)
        except json.JSONDecodeError as exc:
            raise PageImportError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from None


def page_key(record: dict[str, Any]) -> str:
    return f"{record['source']}:{record['language']}:{record['id']}"


@dataclass(frozen=True)
class PageHit:
    page: dict[str, Any]
    score: float
    confidence: float
    quotes: list[str]


class PageIndex:
    """BM25 over the imported pages (title weighted), per-sentence scoring for the quote."""

    def __init__(self, pages: list[dict[str, Any]]) -> None:
        self.pages = pages
        docs = []
        for page in pages:
            doc: Counter[str] = Counter()
            lang = page["language"]
            for word in words(page["title"]):
                for form in _forms(word, lang):
                    doc[form] += TITLE_REPEAT
            for sentence in page["sentences"]:
                for word in words(sentence):
                    for form in _forms(word, lang):
                        doc[form] += 1
            docs.append(doc)
        self.bm25 = BM25(docs, b=PAGE_B) if docs else None

    def __len__(self) -> int:
        return len(self.pages)

    def search(
        self,
        text: str,
        language: str,
        *,
        limit: int = 5,
        source: str | None = None,
        languages: set | None = None,
    ) -> list[PageHit]:
        if self.bm25 is None:
            return []
        stop = STOPWORDS.get(language, frozenset()) | STOPWORDS["de"] | STOPWORDS["en"]
        content = [w for w in words(text) if w not in stop and len(w) > 1]
        scores: dict[int, float] = defaultdict(float)
        matched: dict[int, int] = defaultdict(int)
        ceiling = 0.0
        for word in dict.fromkeys(content):
            forms = [f for f in dict.fromkeys((surface(word), stem(word, language))) if f in self.bm25.idf]
            if not forms:
                ceiling += 4.0
                continue
            ceiling += max(self.bm25.best(f) for f in forms)
            best: dict[int, float] = {}
            for form in forms:
                for doc, value in self.bm25.term_scores(form):
                    if value > best.get(doc, 0.0):
                        best[doc] = value
            for doc, value in best.items():
                scores[doc] += value
                matched[doc] += 1
        wanted = [
            d
            for d in scores
            if (source is None or self.pages[d]["source"] == source)
            and (languages is None or self.pages[d]["language"] in languages)
        ]
        wanted.sort(key=lambda d: -scores[d])
        hits = []
        for rank, doc in enumerate(wanted[:limit]):
            score = scores[doc] / ceiling if ceiling else 0.0
            coverage = matched[doc] / max(len(set(content)), 1)
            second = scores[wanted[rank + 1]] / ceiling if rank + 1 < len(wanted) and ceiling else 0.0
            confidence = 1 / (
                1 + math.exp(-(8.0 * (score - 0.45) + 3.0 * (coverage - 0.6) + 4.0 * (score - second)))
            )
            quotes = self._quotes(self.pages[doc], content, language) if rank == 0 else []
            hits.append(PageHit(self.pages[doc], score, confidence, quotes))
        return hits

    def _quotes(self, page: dict[str, Any], content: list[str], language: str, count: int = 2) -> list[str]:
        """The page's sentences that share the most query terms, in page order."""
        query = {f for w in content for f in _forms(w, language)}
        scored = []
        for index, sentence in enumerate(page["sentences"]):
            terms = {f for w in words(sentence) for f in _forms(w, page["language"])}
            overlap = sum(self.bm25.idf.get(t, 0.0) for t in query & terms)
            if overlap:
                scored.append((overlap, index))
        best = sorted(scored, reverse=True)[:count]
        return [page["sentences"][index] for _, index in sorted(best, key=lambda item: item[1])]


def _forms(word: str, language: str) -> set[str]:
    if word in STOPWORDS.get(language, ()) or len(word) < 2:
        return set()
    return {surface(word), stem(word, language)}
