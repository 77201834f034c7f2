"""Every setting is declared once, on Config (web/core/config.py); its flag, environment variable, help
and default all follow from that one declaration (web/core/options.py)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
from pathlib import Path

import pytest

from sprechstunde.web.core.cli import build_parser
from sprechstunde.web.core.config import ENV_PREFIX, Config, settings
from sprechstunde.web.core.options import add_serve_options, config_from_args, setting
from sprechstunde.web.core.workers import Workers

PACKAGE = Path(__file__).resolve().parent.parent / "sprechstunde"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """The parser reads SPRECHSTUNDE_* when it is built; these tests set exactly what they need."""
    for name in [n for n in os.environ if n.startswith(ENV_PREFIX)]:
        monkeypatch.delenv(name)


def serve_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_serve_options(parser)
    return parser


def subcommand(parser: argparse.ArgumentParser, *path: str) -> argparse.ArgumentParser:
    for name in path:
        choices = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
        parser = choices[name]
    return parser


def serve_config(*argv: str) -> Config:
    return config_from_args(serve_parser().parse_args(list(argv)))


def test_every_setting_is_one_flag_and_one_variable():
    declared = settings()
    assert len({s.option for s in declared}) == len(declared)
    assert len({s.variable for s in declared}) == len(declared)
    assert all(s.variable == ENV_PREFIX + s.env and s.option.startswith("--") for s in declared)
    parser = serve_parser()
    flags = [o for action in parser._actions for o in action.option_strings if o not in ("-h", "--help")]
    assert sorted(flags) == sorted(s.option for s in declared)  # serve has each exactly once


def test_the_help_names_the_variable():
    actions = {a.dest: a for a in serve_parser()._actions}
    for s in settings():
        assert f"[{s.variable}" in actions[s.name].help, s.name
    serve_help = subcommand(build_parser(), "serve").format_help()
    for s in settings():
        assert s.option in serve_help and s.variable in serve_help


def test_config_defaults_are_the_declared_defaults():
    config = Config()
    fields = {f.name for f in dataclasses.fields(Config)}
    for s in settings():
        assert s.name in fields
        assert getattr(config, s.name) == s.default, s.name
        assert s.from_env({}) == s.default, s.name
    parsed = serve_config()  # no flag, no variable
    for s in settings():
        assert getattr(parsed, s.name) == s.default, s.name


def test_a_variable_is_the_default_and_a_flag_wins(monkeypatch):
    monkeypatch.setenv("SPRECHSTUNDE_PORT", "9000")
    monkeypatch.setenv("SPRECHSTUNDE_MAX_FILE_MB", "2.5")
    monkeypatch.setenv("SPRECHSTUNDE_NO_DEMO", "1")
    monkeypatch.setenv("SPRECHSTUNDE_OFFICES", "offices.toml")
    config = serve_config()
    assert (config.port, config.max_file_mb, config.demo) == (9000, 2.5, False)
    assert config.offices_path == Path("offices.toml")
    assert serve_config("--port", "9001").port == 9001
    monkeypatch.setenv("SPRECHSTUNDE_PORT", "")  # empty: the default
    assert serve_config().port == 8080


def test_lists_extend_the_variable_except_the_metrics_allowlist(monkeypatch):
    monkeypatch.setenv("SPRECHSTUNDE_STUN_URLS", "stun:a, stun:b")
    monkeypatch.setenv("SPRECHSTUNDE_METRICS_ALLOW", "10.0.0.0/8")
    config = serve_config("--stun-url", "stun:c", "--metrics-allow", "192.0.2.0/24")
    assert config.stun_urls == ["stun:a", "stun:b", "stun:c"]
    assert config.metrics_allow == ["192.0.2.0/24"]
    assert serve_config().metrics_allow == ["10.0.0.0/8"]


def test_a_bad_number_in_the_environment_stops_with_one_line(monkeypatch):
    monkeypatch.setenv("SPRECHSTUNDE_RETENTION_DAYS", "sieben")
    with pytest.raises(SystemExit, match="^SPRECHSTUNDE_RETENTION_DAYS must be a number, not 'sieben'$"):
        serve_parser()


def test_other_subcommands_share_the_declaration():
    helps = {a.dest: a.help for a in subcommand(build_parser(), "kb", "reload")._actions}
    for name in ("data_dir", "redis_url", "redis_prefix", "chatbot_knowledge", "chatbot_city"):
        assert helps[name] == setting(name).help_text()


def test_the_workers_command_line_uses_declared_flags():
    plan = Workers.plan(["serve"], 2, "node", "http://127.0.0.1:8080")
    used = {word for word in plan.workers[0].command if word.startswith("--")}
    assert used <= {s.option for s in settings()}


def test_no_setting_option_is_written_out_by_hand():
    """Only web/core/options.py adds a setting's option (from its declaration)."""
    options = {s.option for s in settings()}
    written = re.compile(r"""add_argument\(\s*["'](--[a-z0-9-]+)["']""")
    for path in PACKAGE.rglob("*.py"):
        if path.name == "options.py" and path.parent.name == "core":
            continue
        found = set(written.findall(path.read_text())) & options
        assert not found, f"{path.relative_to(PACKAGE)} declares {found} again; declare settings on Config"
        assert not re.search(r"""environ(?:\.get)?[\[(]\s*f?["']SPRECHSTUNDE_""", path.read_text()), path
