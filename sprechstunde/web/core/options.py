"""The command-line options, generated from the settings declared on `Config` (web/core/config.py).

No option of a setting is written out by hand: `serve` gets every setting, the other subcommands the
common ones (data directory, Redis) and the few they name. A setting's environment variable is read
when the parser is built and becomes the option's default, so a flag on the command line wins.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from typing import Any

from sprechstunde.web.core.config import Config, Setting, settings


def setting(name: str) -> Setting:
    """The declared setting of a Config field (KeyError for a field that is none)."""
    found = {s.name: s for s in settings()}
    return found[name]


def add_options(parser: argparse.ArgumentParser, chosen: Iterable[Setting]) -> None:
    """One option per setting: its flag, type, choices, repeatability and environment default."""
    for item in chosen:
        options: dict[str, Any] = {
            "dest": item.name,
            "default": item.from_env(),
            "help": item.help_text(),
        }
        if item.kind is bool:
            options["action"] = "store_false" if item.default else "store_true"
        else:
            if item.choices:
                options["choices"] = item.choices  # shown as {a,b,c}
            else:
                options["metavar"] = item.metavar or item.option.lstrip("-").replace("-", "_").upper()
            if item.kind is list:
                options["action"] = "append"
                if item.flags_replace_env:
                    options["default"] = None  # config_from_args: the flags, else the environment
            elif item.parse is not None or item.kind is not str:
                options["type"] = item.parse or item.kind
        parser.add_argument(item.option, **options)


def add_common(parser: argparse.ArgumentParser, *names: str) -> None:
    """The options of every subcommand that opens the store, and the settings named."""
    add_options(parser, [s for s in settings() if s.common or s.name in names])


def add_serve_options(parser: argparse.ArgumentParser) -> None:
    add_options(parser, settings())


def config_from_args(args: argparse.Namespace) -> Config:
    """The Config of `serve`: each setting as parsed (flag, else environment, else default)."""
    values = {}
    for item in settings():
        value = getattr(args, item.name)
        if value is None and item.flags_replace_env:
            value = item.from_env()
        values[item.name] = value
    return Config(**values)
