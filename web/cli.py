"""`sprechstunde` command line: serve, room create, user add.

Every option can also be set as an environment variable SPRECHSTUNDE_<OPTION> (e.g.
SPRECHSTUNDE_DATA_DIR); a flag on the command line wins.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import os
import secrets
import sys
from pathlib import Path

from media.session import MEDIA_MODES
from rooms.service import RoomError, RoomService, parse_duration
from rooms.staff import STAFF_ROLES, StaffDirectory, StaffError
from rooms.tokens import TokenSigner
from store import SQLiteStore
from web.config import Config, env, env_list, prepare_data_dir

DEMO_OFFICE = "vhs"
DEMO_USER = "demo"
DEMO_FILE = "demo-account"


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(env("DATA_DIR", "data")),
        help="directory for the server secret and the SQLite file [SPRECHSTUNDE_DATA_DIR, ./data]",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sprechstunde",
        description="Video consultations for public administrations.",
        epilog="Every option can be given as SPRECHSTUNDE_<OPTION> in the environment.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the web, signaling and media server")
    _common(serve)
    serve.add_argument(
        "--host",
        default=env("HOST", "127.0.0.1"),
        help="address to listen on [SPRECHSTUNDE_HOST, 127.0.0.1]",
    )
    serve.add_argument(
        "--port",
        type=int,
        default=int(env("PORT", "8080") or 8080),
        help="TCP port [SPRECHSTUNDE_PORT, 8080]",
    )
    serve.add_argument(
        "--base-url",
        default=env("BASE_URL"),
        help="public URL used in join links, e.g. https://video.stadt.de "
        "[SPRECHSTUNDE_BASE_URL, http://HOST:PORT]",
    )
    serve.add_argument(
        "--stun-url",
        action="append",
        default=env_list("STUN_URLS"),
        help="STUN server handed to browsers, repeatable [SPRECHSTUNDE_STUN_URLS, comma-separated]",
    )
    serve.add_argument(
        "--turn-url",
        action="append",
        default=env_list("TURN_URLS"),
        help="TURN server URL (coturn), repeatable [SPRECHSTUNDE_TURN_URLS, comma-separated]",
    )
    serve.add_argument(
        "--turn-secret",
        default=env("TURN_SECRET"),
        help="coturn static-auth-secret for time-limited credentials [SPRECHSTUNDE_TURN_SECRET]",
    )
    serve.add_argument(
        "--media-address",
        action="append",
        default=env_list("MEDIA_ADDRESSES"),
        help="IP address the media server announces as ICE host candidate, repeatable; "
        "default: all interfaces but loopback [SPRECHSTUNDE_MEDIA_ADDRESSES]",
    )
    serve.add_argument(
        "--media-mode",
        choices=MEDIA_MODES,
        default=env("MEDIA_MODE", "forward"),
        help="forward: pass encoded media through (default); transcode: decode and re-encode every "
        "stream, the baseline for bench/media_relay.py [SPRECHSTUNDE_MEDIA_MODE]",
    )
    serve.add_argument(
        "--no-demo",
        action="store_true",
        default=env("NO_DEMO") == "1",
        help="do not create the demo staff account on first start [SPRECHSTUNDE_NO_DEMO=1]",
    )
    serve.add_argument(
        "--log-level",
        default=env("LOG_LEVEL", "info"),
        choices=["debug", "info", "warning", "error"],
        help="[SPRECHSTUNDE_LOG_LEVEL, info]",
    )

    room = commands.add_parser("room", help="manage consultation rooms")
    room_commands = room.add_subparsers(dest="room_command", required=True)
    create = room_commands.add_parser("create", help="create a room and print its links as one JSON object")
    _common(create)
    create.add_argument("--office", required=True, help="office id, e.g. vhs")
    create.add_argument(
        "--base-url",
        default=env("BASE_URL"),
        help="public URL of the server [SPRECHSTUNDE_BASE_URL, http://127.0.0.1:8080]",
    )
    create.add_argument("--ttl", default="2h", help="how long the links are valid: 90m, 2h, 1d [2h]")

    user = commands.add_parser("user", help="manage staff accounts")
    user_commands = user.add_subparsers(dest="user_command", required=True)
    add = user_commands.add_parser("add", help="add a staff account")
    _common(add)
    add.add_argument("name", help="username (a-z, 0-9, . _ -)")
    add.add_argument("--role", choices=STAFF_ROLES, default="advisor", help="[advisor]")
    add.add_argument("--office", action="append", required=True, help="office id, repeatable")
    add.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from standard input instead of asking or generating one",
    )
    return parser


def _serve(args: argparse.Namespace) -> None:
    from aiohttp import web

    from web.app import create_app

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    config = Config(
        host=args.host,
        port=args.port,
        data_dir=args.data_dir,
        base_url=args.base_url,
        stun_urls=args.stun_url,
        turn_urls=args.turn_url,
        turn_secret=args.turn_secret,
        media_addresses=args.media_address,
        media_mode=args.media_mode,
        demo=not args.no_demo,
    )
    if config.demo:
        print(asyncio.run(_ensure_demo(config)), flush=True)
    app = create_app(config)
    print(f"Sprechstunde läuft auf / is running at {config.public_url}", flush=True)
    web.run_app(app, host=config.host, port=config.port, print=None, shutdown_timeout=5)


async def _ensure_demo(config: Config) -> str:
    prepare_data_dir(config.data_dir)
    store = SQLiteStore(config.database_path)
    try:
        staff = StaffDirectory(store)
        path = config.data_dir / DEMO_FILE
        if await staff.get(DEMO_USER) is None:
            password = secrets.token_urlsafe(12)
            await staff.add(DEMO_USER, password, "advisor", [DEMO_OFFICE])
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(password + "\n")
        password = path.read_text().strip() if path.exists() else "(changed; see `sprechstunde user`)"
    finally:
        await store.close()
    return (
        f"Demo office: {DEMO_OFFICE} (Volkshochschule)\n"
        f"Demo staff account: {DEMO_USER} / {password}\n"
        f"Sign in at {config.public_url}/login"
    )


async def _room_create(args: argparse.Namespace) -> int:
    secret = prepare_data_dir(args.data_dir)
    store = SQLiteStore(args.data_dir / "sprechstunde.sqlite3")
    try:
        service = RoomService(store, TokenSigner(secret))
        room = await service.create(args.office, parse_duration(args.ttl))
        base = args.base_url or "http://127.0.0.1:8080"
        print(json.dumps(service.links(room, base).as_json()))
    except RoomError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    finally:
        await store.close()
    return 0


async def _user_add(args: argparse.Namespace) -> int:
    generated = False
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    elif sys.stdin.isatty():
        password = getpass.getpass("Password (empty: generate one): ")
        if password and password != getpass.getpass("Repeat: "):
            print("error: passwords differ", file=sys.stderr)
            return 2
    else:
        password = ""
    if not password:
        password, generated = secrets.token_urlsafe(12), True
    prepare_data_dir(args.data_dir)
    store = SQLiteStore(args.data_dir / "sprechstunde.sqlite3")
    try:
        member = await StaffDirectory(store).add(args.name, password, args.role, args.office)
    except StaffError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    finally:
        await store.close()
    print(f"added {member.role} {member.username} ({', '.join(member.offices)})")
    if generated:
        print(f"password: {password}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        _serve(args)
        return 0
    if args.command == "room":
        return asyncio.run(_room_create(args))
    return asyncio.run(_user_add(args))


if __name__ == "__main__":
    sys.exit(main())
