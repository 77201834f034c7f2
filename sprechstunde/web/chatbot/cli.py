"""`sprechstunde kb reload` and `sprechstunde kb import-pages FILE.json`.

`kb reload` checks every topic file first and prints each problem as "<path>:<line>: <problem>" (exit 2,
nothing changes); when all is well it tells the running servers through the store, and each reloads
within a few seconds (a server that still finds a broken file keeps its old knowledge base).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sprechstunde.chatbot.knowledge import (
    KNOWLEDGE_DIR,
    KnowledgeError,
    apply_city,
    load_city,
    load_knowledge,
    unknown_city_topics,
)
from sprechstunde.chatbot.pages import PageImportError, load_import_file, parse_pages
from sprechstunde.chatbot.service import RELOAD_CHECK, ChatService
from sprechstunde.chatbot.text import LANGUAGES
from sprechstunde.store.port import Store
from sprechstunde.web.core.config import prepare_data_dir
from sprechstunde.web.core.options import add_common


def add_parser(commands: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    kb = commands.add_parser("kb", help="the chatbot's knowledge base and imported city pages")
    kb_commands = kb.add_subparsers(dest="kb_command", required=True)
    reload = kb_commands.add_parser(
        "reload",
        help="check the topic files (path:line of every problem) and make running servers reload them",
    )
    add_common(reload, "chatbot_knowledge", "chatbot_city")  # as `serve` has them (web/core/config.py)
    pages = kb_commands.add_parser(
        "import-pages",
        help="import a city's service pages (JSON list of {title, content (HTML), url, language}) so "
        "the chatbot answers from them; replaces the earlier pages of the same --source",
    )
    common(pages)
    pages.add_argument("file", type=Path, metavar="FILE.json")
    pages.add_argument("--source", help="name of this set of pages, e.g. the city [the file name]")
    pages.add_argument(
        "--language", choices=LANGUAGES, help="language of pages that do not say (default: from their URL)"
    )


async def run(args: argparse.Namespace, open_store: Callable[[argparse.Namespace], Awaitable[Store]]) -> int:
    prepare_data_dir(args.data_dir)
    if args.kb_command == "reload":
        return await _reload(args, open_store)
    return await _import_pages(args, open_store)


async def _reload(
    args: argparse.Namespace, open_store: Callable[[argparse.Namespace], Awaitable[Store]]
) -> int:
    directory = args.chatbot_knowledge or KNOWLEDGE_DIR
    try:
        city = load_city(args.chatbot_city)
        base = apply_city(load_knowledge(directory, strict=True), city)
    except KnowledgeError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        print("nothing reloaded; the servers keep the knowledge base they have", file=sys.stderr)
        return 2
    for topic_id in unknown_city_topics(base, city):
        print(f"warning: {args.chatbot_city}: topics.{topic_id}: no such topic", file=sys.stderr)
    store = await open_store(args)
    try:
        await ChatService(store, directory).request_reload()
    finally:
        await store.close()
    print(f"{len(base)} topics OK in {directory}; running servers reload within {RELOAD_CHECK:.0f} s")
    return 0


async def _import_pages(
    args: argparse.Namespace, open_store: Callable[[argparse.Namespace], Awaitable[Store]]
) -> int:
    source = args.source or args.file.stem
    try:
        records = parse_pages(load_import_file(str(args.file)), source, args.language)
    except (PageImportError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    store = await open_store(args)
    try:
        count = await ChatService(store).import_pages(records, source)
    finally:
        await store.close()
    print(f"imported {count} pages as {source!r}; running servers pick them up within {RELOAD_CHECK:.0f} s")
    return 0
