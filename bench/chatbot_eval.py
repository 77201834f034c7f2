"""Chatbot evaluation: topic accuracy, escalation, out-of-scope refusals, latency; OMoS-QA page retrieval.

Part 1 runs every question of tests/data/chatbot_questions.yaml through `ChatService.message` (the same
path as POST /api/chatbot/messages, with the embedded SQLite store), each in a fresh conversation whose
`context` messages are sent first. Counted:
- top-1 topic accuracy: expect=topic and the reply's topic is that topic, for German and for the other
  languages (and per language);
- escalation: predicted = the reply offers a person (escalation not null); precision over all questions
  with a prediction, recall over expect=escalate;
- out-of-scope refusal: expect=out_of_scope and the reply has no topic and is no invented answer (an
  "unsure" reply that only offers a person counts as refused, an answer from a page does not);
- latency of the measured message (p50/p95, ms), and language detection accuracy.

Part 2 imports the OMoS-QA service pages (../shared/datasets/omos-qa, CC BY 4.0, digitalfabrik/
integreat-qa-dataset; texts of the Integreat app of Landkreis Augsburg and Rems-Murr-Kreis) with the same
import as `sprechstunde kb import-pages`, and asks each German and English question of those two cities:
top-1/top-5 = the question's page (or its translation) is the first / among the first five pages found in
that city's pages; for questions the page cannot answer, how often the bot refuses (no page confident).

    .venv/bin/python -m bench.chatbot_eval [--questions FILE] [--knowledge DIR] [--no-omos] [--errors]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import yaml

from sprechstunde.chatbot.knowledge import KNOWLEDGE_DIR
from sprechstunde.chatbot.pages import PAGE_KIND, load_import_file, parse_pages
from sprechstunde.chatbot.service import PAGE_THRESHOLD, ChatService
from sprechstunde.store import open_store

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = ROOT / "tests" / "data" / "chatbot_questions.yaml"
OMOS = ROOT.parent / "shared" / "datasets" / "omos-qa"
OMOS_CITIES = ("lkaugsburg", "rems-murr-kreis")


def pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:5.1f} % ({part}/{whole})" if whole else "   n/a"


async def run_questions(service: ChatService, questions: list[dict], show_errors: bool) -> None:
    per_lang: dict[str, list[bool]] = defaultdict(list)
    escalated_expected = escalated_right = predicted = predicted_right = 0
    refused = oos = 0
    lang_right = 0
    latencies = []
    errors = []
    for q in questions:
        conversation = None
        for earlier in q.get("context") or []:
            conversation, _ = await service.message(earlier, conversation)
        start = time.perf_counter()
        conversation, reply = await service.message(q["text"], conversation)
        latencies.append((time.perf_counter() - start) * 1000)
        lang_right += reply.language == q["language"]
        expect = q["expect"]
        if reply.escalation is not None:
            predicted += 1
            predicted_right += expect == "escalate"
        if expect == "escalate":
            escalated_expected += 1
            escalated_right += reply.escalation is not None
            ok = reply.escalation is not None
        elif expect == "out_of_scope":
            oos += 1
            ok = reply.topic is None and reply.kind in ("out_of_scope", "unsure", "rephrase")
            refused += ok
        else:
            ok = reply.topic == q.get("topic")
            per_lang[q["language"]].append(ok)
        if not ok:
            errors.append((q, reply))
    de = per_lang.get("de", [])
    other = [ok for lang, oks in per_lang.items() if lang != "de" for ok in oks]
    print(f"questions: {len(questions)}")
    print(f"top-1 topic accuracy, German:          {pct(sum(de), len(de))}")
    print(f"top-1 topic accuracy, other languages: {pct(sum(other), len(other))}")
    for lang in sorted(per_lang):
        if lang != "de":
            oks = per_lang[lang]
            print(f"    {lang}: {pct(sum(oks), len(oks))}")
    print(f"escalation recall (person requests):  {pct(escalated_right, escalated_expected)}")
    print(f"escalation precision:                 {pct(predicted_right, predicted)}")
    print(f"out-of-scope refused:                 {pct(refused, oos)}")
    print(f"language detected:                    {pct(lang_right, len(questions))}")
    latencies.sort()
    p95 = latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))]
    print(f"latency per message: p50 {statistics.median(latencies):.1f} ms, p95 {p95:.1f} ms")
    if show_errors:
        for q, reply in errors:
            print(
                f"  MISS [{q['language']}] {q['text']!r} expect={q['expect']}:{q.get('topic')} "
                f"got topic={reply.topic} kind={reply.kind} conf={reply.confidence:.2f} lang={reply.language}"
            )


async def run_omos(service: ChatService, store, show_errors: bool) -> None:
    start = time.perf_counter()
    imported = 0
    for city in OMOS_CITIES:
        records = []
        for lang in ("de", "en"):
            path = OMOS / "pages" / f"{city}-{lang}.json"
            records += parse_pages(load_import_file(str(path)), city, lang)
        imported += await service.import_pages(records, city)
    await service.refresh(force=True)
    print(
        f"\nOMoS-QA: imported {imported} pages in {time.perf_counter() - start:.1f} s "
        f"(index of {len(service.pages)} pages)"
    )
    group_of = {}
    for _, record in await store.scan(PAGE_KIND):
        group_of[(record["source"], record["id"])] = record["group"]
    for dataset in ("de", "en"):
        questions = json.loads((OMOS / f"dataset_{dataset}.json").read_text())
        top1 = top5 = answerable = unanswerable = refused = 0
        latencies = []
        confidences: list[tuple[float, bool, bool]] = []  # (confidence, answerable, top-1 right)
        for q in questions:
            if q["city"] not in OMOS_CITIES:
                continue
            answers = q["answers"]
            if isinstance(answers, str):
                answers = json.loads(answers)
            target = group_of.get((q["city"], str(q["pageId"])), str(q["pageId"]))
            t0 = time.perf_counter()
            hits = service.pages.search(q["question"], q["language"], limit=5, source=q["city"])
            latencies.append((time.perf_counter() - t0) * 1000)
            groups = [hit.page["group"] for hit in hits]
            confidence = hits[0].confidence if hits else 0.0
            confidences.append((confidence, bool(answers), bool(groups) and groups[0] == target))
            if answers:
                answerable += 1
                top1 += bool(groups) and groups[0] == target
                top5 += target in groups
            else:
                unanswerable += 1
                refused += not hits or hits[0].confidence < PAGE_THRESHOLD
        if show_errors:  # the trade-off behind PAGE_THRESHOLD
            for threshold in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
                answered = sum(1 for c, a, ok in confidences if a and ok and c >= threshold)
                held = sum(1 for c, a, _ in confidences if not a and c < threshold)
                print(
                    f"    threshold {threshold:.1f}: answerable answered with the right page "
                    f"{pct(answered, answerable)}, unanswerable refused {pct(held, unanswerable)}"
                )
        latencies.sort()
        print(
            f"  {dataset} questions: answerable {answerable}: top-1 {pct(top1, answerable)}, "
            f"top-5 {pct(top5, answerable)}; unanswerable {unanswerable}: "
            f"refused {pct(refused, unanswerable)}; "
            f"search p95 {latencies[int(0.95 * len(latencies))]:.1f} ms"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--questions", type=Path, default=QUESTIONS)
    parser.add_argument("--knowledge", type=Path, default=KNOWLEDGE_DIR)
    parser.add_argument("--no-omos", action="store_true", help="skip the OMoS-QA page retrieval part")
    parser.add_argument("--errors", action="store_true", help="print every missed question")
    args = parser.parse_args()
    questions = yaml.safe_load(args.questions.read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(Path(tmp) / "bench.sqlite3")
        try:
            start = time.perf_counter()
            service = ChatService(store, args.knowledge)
            await service.ready()
            print(
                f"knowledge base: {len(service.engine.base)} topics, index built in "
                f"{(time.perf_counter() - start) * 1000:.0f} ms"
            )
            await run_questions(service, questions, args.errors)
            if not args.no_omos and OMOS.is_dir():
                await run_omos(service, store, args.errors)
        finally:
            await store.close()


if __name__ == "__main__":
    asyncio.run(main())
