"""The chatbot's language data files (chatbot/data/*.yaml): the shipped files load and feed the modules
that match them; a broken file stops loading with "<path>:<line>: <key>: <problem>" for each mistake."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sprechstunde.chatbot import glossary, language, lexicon, resources, text
from sprechstunde.chatbot.resources import (
    DATA_DIR,
    DataError,
    GlossaryData,
    LanguageData,
    LexiconData,
    SentencesData,
    load_file,
)


def broken(tmp_path: Path, name: str, old: str, new: str) -> Path:
    """A copy of the shipped `name` with the first `old` replaced by `new`."""
    source = (DATA_DIR / name).read_text(encoding="utf-8")
    assert old in source, old
    path = tmp_path / name
    path.write_text(source.replace(old, new, 1), encoding="utf-8")
    return path


def line_with(path: Path, fragment: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if fragment in line)


def test_the_shipped_files_load_and_feed_the_matchers():
    assert resources.lexicon().person.nouns["de"][0] == "mensch"
    assert "ausweis" in lexicon.COLLOQUIAL_DE and lexicon.CONTINUATION.match("und was kostet das")
    assert lexicon.message("did_you_mean", "fr", titles="X") == "Vouliez-vous dire : X ?"
    assert lexicon.message("page_intro", "tr", title="X") == "Şehrinizin “X” sayfasında şöyle yazıyor:"
    assert lexicon.message("page_intro", "xx", title="X") == lexicon.message("page_intro", "de", title="X")
    assert lexicon.LABELS["en"]["bring"] == "What to bring"
    assert glossary.expansions("j'ai perdu mon passeport") and language.LETTERS["ß"] == ("de", 3.0)
    assert "und" in text.STOPWORDS["de"] and "ich" in language.MARKERS["de"]
    # a trailing space survives YAML: it means "whole word only"
    assert "zu " in lexicon.WANT_VERBS and "cane " in glossary.CONCEPTS["hundesteuer hund"]


def test_a_broken_regular_expression_names_file_line_and_key(tmp_path):
    path = broken(tmp_path, "lexicon.yaml", r"'\bhuman\b'", r"'\bhuman(\b'")
    with pytest.raises(DataError) as caught:
        load_file(path, LexiconData)
    [problem] = caught.value.problems
    assert problem.startswith(
        f"{path}:{line_with(path, 'human(')}: person.strong.10: not a regular expression"
    )


def test_a_yaml_truth_value_is_not_taken_for_a_word(tmp_path):
    path = broken(tmp_path, "language.yaml", "'on', or", "on, or")
    with pytest.raises(DataError) as caught:
        load_file(path, LanguageData)
    [problem] = caught.value.problems
    assert re.match(
        rf"{re.escape(str(path))}:\d+: stopwords\.en\.\d+: Input should be a valid string", problem
    )
    assert "quote the word" in problem


def test_unknown_language_upper_case_and_unknown_key_are_each_reported(tmp_path):
    path = broken(tmp_path, "language.yaml", "  ku: [çawa", "  kur: [çawa")
    source = (
        path.read_text().replace("ä: [de, 2.0]", "ä: [de, -1]").replace("markers:", "markers:\n  xx: [Ich]")
    )
    path.write_text(source + "extra: 1\n")
    with pytest.raises(DataError) as caught:
        load_file(path, LanguageData)
    problems = "\n".join(caught.value.problems)
    assert f"{path}:{line_with(path, 'kur: [')}: markers.kur: Input should be 'de'" in problems
    assert "markers.xx.0: 'Ich' must be lower case" in problems
    assert f"{path}:{line_with(path, 'ä: [de')}: letters.ä.1: Input should be greater than 0" in problems
    assert f"{path}:{line_with(path, 'extra:')}: extra: Extra inputs are not permitted" in problems


def test_a_translation_must_keep_the_placeholders_and_german_is_required(tmp_path):
    path = broken(tmp_path, "sentences.yaml", "en: 'Did you mean: {titles}?'", "en: 'Did you mean: {title}?'")
    path.write_text(path.read_text().replace("    de: 'Bitte schreiben Sie Ihre Frage.'\n", ""))
    with pytest.raises(DataError) as caught:
        load_file(path, SentencesData)
    problems = caught.value.problems
    line = line_with(path, "Did you mean")
    assert (
        f"{path}:{line}: messages.did_you_mean.en: placeholders ['title'] differ from German's ['titles']"
        in problems
    )
    assert any(
        p.endswith("messages.empty: needs a German ('de') text: it stands in for missing languages")
        for p in problems
    )


def test_a_missing_label_or_message_is_reported(tmp_path):
    path = broken(tmp_path, "sentences.yaml", "    more: More\n", "")
    path.write_text(path.read_text().replace("  rephrase:", "  rephrased:"))
    with pytest.raises(DataError) as caught:
        load_file(path, SentencesData)
    problems = "\n".join(caught.value.problems)
    assert "labels.en: missing label 'more' (every language has all of German's)" in problems
    assert "messages: missing message 'rephrase'" in problems


def test_syntax_errors_and_missing_files_name_the_file(tmp_path):
    path = broken(tmp_path, "glossary.yaml", "concepts:", "concepts: [")
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}:\d+: YAML syntax error"):
        load_file(path, GlossaryData)
    with pytest.raises(DataError, match="cannot read"):
        load_file(tmp_path / "missing.yaml", GlossaryData)
    (tmp_path / "list.yaml").write_text("- a\n")
    with pytest.raises(DataError, match="must be a YAML mapping"):
        load_file(tmp_path / "list.yaml", GlossaryData)
