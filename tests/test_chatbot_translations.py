"""Every topic's answer in all eight languages, each checked against the current German text
(chatbot/translations.py): a missing language or a translation older than its German source fails here."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sprechstunde.chatbot.engine import Engine, State
from sprechstunde.chatbot.knowledge import KNOWLEDGE_DIR, KnowledgeError, load_knowledge
from sprechstunde.chatbot.translations import TRANSLATED, german_revision, load_translations, main


def test_every_topic_is_complete_and_current_in_every_language() -> None:
    base = load_knowledge(KNOWLEDGE_DIR, strict=True)
    _, status = load_translations(load_knowledge(KNOWLEDGE_DIR, strict=True), KNOWLEDGE_DIR)
    assert status.problems == []
    assert status.orphans == []
    assert status.missing == [], "run: python -m sprechstunde.chatbot.translations"
    assert status.stale == [], "German changed since these were checked"
    assert base.stale == []
    for topic in base:
        for lang in ("de", *TRANSLATED):
            assert topic.answer.get(lang), (topic.id, lang)
            assert topic.title.get(lang), (topic.id, lang)
            assert topic.checked.get(lang), (topic.id, lang)
            for part in ("bring", "fees", "online"):
                assert bool(getattr(topic, part).get(lang)) == bool(getattr(topic, part).get("de")), (
                    topic.id,
                    lang,
                    part,
                )
            for aspect, texts in topic.followups.items():
                assert texts.get(lang), (topic.id, lang, aspect)


def _copy(tmp_path: Path, *topics: str) -> Path:
    target = tmp_path / "kb"
    target.mkdir()
    for topic in topics:
        shutil.copy(KNOWLEDGE_DIR / f"{topic}.yaml", target)
        for lang in TRANSLATED:
            source = KNOWLEDGE_DIR / lang / f"{topic}.yaml"
            if source.exists():
                (target / lang).mkdir(exist_ok=True)
                shutil.copy(source, target / lang)
    return target


def test_a_changed_german_text_makes_its_translations_stale_and_they_are_not_served(tmp_path: Path) -> None:
    kb = _copy(tmp_path, "reisepass", "personalausweis")
    german = kb / "reisepass.yaml"
    german.write_text(german.read_text().replace("70 €", "72 €"), encoding="utf-8")
    base = load_knowledge(kb, strict=True)
    topic = base.get("reisepass")
    assert topic is not None
    assert "en/reisepass: checked against" in " ".join(base.stale)
    assert "en" not in topic.answer  # stale: the German text stands in
    reply = Engine(base).answer(topic, "en")
    assert "72 €" in reply.text  # German, with the note that says so
    assert reply.text != topic.answer["de"]
    assert main([str(kb), "--language", "en"]) == 1
    # checking it again against the new revision makes it current
    english = kb / "en" / "reisepass.yaml"
    old = load_knowledge(KNOWLEDGE_DIR).get("reisepass")
    assert old is not None
    english.write_text(
        english.read_text().replace(german_revision(old), german_revision(topic)), encoding="utf-8"
    )
    assert "en" in load_knowledge(kb).get("reisepass").answer  # type: ignore[union-attr]


def test_a_translation_missing_an_aspect_or_with_an_unknown_key_is_reported_with_its_line(
    tmp_path: Path,
) -> None:
    kb = _copy(tmp_path, "reisepass")
    english = kb / "en" / "reisepass.yaml"
    text = english.read_text()
    cut = text.index("followups:")
    english.write_text(text[:cut] + "colour: blue\n", encoding="utf-8")
    with pytest.raises(KnowledgeError) as caught:
        load_knowledge(kb, strict=True)
    problems = "\n".join(caught.value.problems)
    assert "missing followup 'cost'" in problems
    assert "unknown key 'colour'" in problems
    assert f"{english}:" in problems
    # start-up (not strict) keeps serving: the German text stands in for the broken language
    base = load_knowledge(kb, strict=False)
    assert "en" not in base.get("reisepass").answer  # type: ignore[union-attr]
    assert base.problems


def test_a_translation_of_a_topic_that_does_not_exist_is_reported(tmp_path: Path) -> None:
    kb = _copy(tmp_path, "reisepass")
    (kb / "en" / "no-such-topic.yaml").write_text("source: x\n", encoding="utf-8")
    with pytest.raises(KnowledgeError, match="no topic 'no-such-topic'"):
        load_knowledge(kb, strict=True)


def test_each_language_is_answered_in_that_language() -> None:
    engine = Engine(load_knowledge(KNOWLEDGE_DIR))
    topic = engine.base.get("reisepass")
    assert topic is not None
    for lang in TRANSLATED:
        reply = engine.answer(topic, lang)
        assert reply.text.startswith(topic.answer[lang][:40]), lang
    reply, _ = engine.respond("Pasaport ne kadar?", State())
    assert reply.language == "tr" and reply.topic == "reisepass"
    assert topic.fees["tr"] in reply.text or topic.followups["cost"]["tr"] in reply.text
