"""`sprechstunde` command line: serve, room create, user add|list|disable|passwd, keys rotate.

Every option can also be set as an environment variable SPRECHSTUNDE_<OPTION> (e.g.
SPRECHSTUNDE_DATA_DIR); a flag on the command line wins.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import getpass
import json
import os
import secrets
import sys

from sprechstunde.chatbot.knowledge import KnowledgeError
from sprechstunde.documents import DocumentService, KeyRing, KeyRingError
from sprechstunde.rooms.offices import OfficeConfigError, load_offices
from sprechstunde.rooms.service import RoomError, RoomService, parse_duration
from sprechstunde.rooms.staff import STAFF_ROLES, StaffDirectory, StaffError
from sprechstunde.rooms.tokens import TokenSigner
from sprechstunde.scheduling.availability import ensure_pattern
from sprechstunde.store import Store, StoreUnavailable, open_store, ready
from sprechstunde.web.booking import cli as booking_cli
from sprechstunde.web.chatbot import cli as chatbot_cli
from sprechstunde.web.city.settings import CityConfigError
from sprechstunde.web.core.config import DATABASE_FILE, NODE_ID, Config, prepare_data_dir
from sprechstunde.web.core.options import add_common, add_serve_options, config_from_args
from sprechstunde.web.core.workers import SipPorts, Workers

DEMO_OFFICE = "vhs"
DEMO_USER = "demo"
DEMO_FILE = "demo-account"


def _common(parser: argparse.ArgumentParser) -> None:
    add_common(parser)  # --data-dir, --redis, --redis-prefix (declared in web/core/config.py)


async def _open_store(args: argparse.Namespace) -> Store:
    """The configured store, checked to be reachable (StoreUnavailable otherwise)."""
    database = args.data_dir / DATABASE_FILE
    store = open_store(database, redis_url=args.redis_url, redis_prefix=args.redis_prefix)
    try:
        await ready(store)
    except StoreUnavailable:
        await store.close()
        raise
    return store


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sprechstunde",
        description="Video consultations for public administrations.",
        epilog="Every option can be given as SPRECHSTUNDE_<OPTION> in the environment.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the web, signaling and media server")
    add_serve_options(serve)  # every setting declared on Config (web/core/config.py)

    room = commands.add_parser("room", help="manage consultation rooms")
    room_commands = room.add_subparsers(dest="room_command", required=True)
    create = room_commands.add_parser("create", help="create a room and print its links as one JSON object")
    add_common(create, "base_url")
    create.add_argument("--office", required=True, help="office id, e.g. vhs")
    create.add_argument("--ttl", default="2h", help="how long the links are valid: 90m, 2h, 1d [2h]")

    user = commands.add_parser("user", help="manage staff accounts")
    user_commands = user.add_subparsers(dest="user_command", required=True)
    add = user_commands.add_parser("add", help="add a staff account")
    _common(add)
    add.add_argument("name", help="username (a-z, 0-9, . _ -)")
    add.add_argument("--role", choices=STAFF_ROLES, default="advisor", help="[advisor]")
    add.add_argument("--office", action="append", required=True, help="office id, repeatable")
    add.add_argument(
        "--language",
        action="append",
        help="language the advisor speaks (de, en, fr, it, pl, tr, ku, …), repeatable [de]",
    )
    add.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from standard input instead of asking or generating one",
    )
    listing = user_commands.add_parser("list", help="list staff accounts (never passwords)")
    _common(listing)
    disable = user_commands.add_parser("disable", help="lock an account; its sessions end at once")
    _common(disable)
    disable.add_argument("name", help="username")
    enable = user_commands.add_parser("enable", help="unlock a disabled account (old sessions stay ended)")
    _common(enable)
    enable.add_argument("name", help="username")
    passwd = user_commands.add_parser("passwd", help="set a new password; every session of the account ends")
    _common(passwd)
    passwd.add_argument("name", help="username")
    passwd.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from standard input instead of asking or generating one",
    )

    keys = commands.add_parser("keys", help="manage the master keys that wrap document keys")
    keys_commands = keys.add_subparsers(dest="keys_command", required=True)
    rotate = keys_commands.add_parser(
        "rotate",
        help="make a new master key active and re-wrap every document key with it "
        "(document contents are not re-encrypted); safe while the server runs",
    )
    add_common(rotate, "document_keys")
    rotate.add_argument(
        "--keep-retired",
        action="store_true",
        help="keep the old master keys in the key file (default: delete those no document uses any more)",
    )
    booking_cli.add_parser(commands, _common)  # availability show|set
    chatbot_cli.add_parser(commands, _common)  # kb reload|import-pages
    return parser


GC_THRESHOLDS = (10_000, 20, 20)


def _serve(args: argparse.Namespace) -> None:
    from aiohttp import web

    from sprechstunde.media.ice_policy import IcePolicy
    from sprechstunde.networks import parse_networks
    from sprechstunde.web.core.app import create_app
    from sprechstunde.web.core.observability import AccessLogger, parse_allowlist, setup_logging

    config = config_from_args(args)
    setup_logging(config.log_level, config.log_format)
    try:
        parse_allowlist(config.metrics_allow)
        parse_networks(config.trusted_proxies, "--trusted-proxy")
        IcePolicy.build(config.ice_allow, config.ice_deny)  # a bad CIDR stops start-up in one line
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    if config.node_id is not None and not NODE_ID.fullmatch(config.node_id):
        raise SystemExit("error: --node-id may hold only letters, digits, - and _ (at most 40)")
    if config.workers > 1 and not config.redis_url:
        raise SystemExit("error: --workers needs --redis: the processes share their state through it")
    try:  # with --workers N: one SIP port per process, all of them must exist
        sip = SipPorts.of(config)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if config.redis_url:  # fail at once, in one line, when Redis cannot be reached
        asyncio.run(_check_store(args))
    if config.demo:
        print(asyncio.run(_ensure_demo(config)), flush=True)
    app = create_app(config)
    workers = Workers.plan(args.argv, config.workers, config.node_name, config.public_url, sip)
    workers.start()
    print(f"Sprechstunde läuft auf / is running at {config.public_url}", flush=True)
    # Full garbage collections stop every socket for as long as they walk the heap: 50–120 ms with 1,000
    # connections (issue 21), 0.5 s with 1,000 peer connections. What start-up built (modules, catalogs,
    # the app) lives as long as the process: frozen, no collection walks it again. And young collections
    # every GC_THRESHOLDS[0] allocations instead of 700, with full ones after GC_THRESHOLDS[1] × [2] of
    # them, make the full walk some hundred times rarer (a burst of chat no longer sets one off); cyclic
    # garbage, e.g. of a closed peer connection, waits that much longer (minutes) to be freed.
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        web.run_app(
            app,
            host=config.host,
            port=config.port,
            print=None,
            shutdown_timeout=5,
            access_log_class=AccessLogger,
        )
    finally:
        workers.stop()


async def _availability(args: argparse.Namespace) -> int:
    store = await _open_store(args)
    try:
        return await booking_cli.run(args, store)
    finally:
        await store.close()


async def _check_store(args: argparse.Namespace) -> None:
    await (await _open_store(args)).close()


async def _ensure_demo(config: Config) -> str:
    prepare_data_dir(config.data_dir)
    store = open_store(config.database_path, redis_url=config.redis_url, redis_prefix=config.redis_prefix)
    try:
        staff = StaffDirectory(store)
        path = config.data_dir / DEMO_FILE
        if await staff.get(DEMO_USER) is None:
            password = secrets.token_urlsafe(12)
            await staff.add(DEMO_USER, password, "advisor", [DEMO_OFFICE], ["de", "en"])
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(password + "\n")
        # scheduling: the demo advisor takes appointments during the demo office's service hours
        demo_office = load_offices(config.offices_path, holiday_state=config.holiday_state).get(DEMO_OFFICE)
        if demo_office is not None:
            await ensure_pattern(store, DEMO_USER, demo_office.hours)
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
    store = await _open_store(args)
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


def _read_password(from_stdin: bool) -> tuple[str, bool] | None:
    """(password, generated) from stdin, the terminal or a fresh random one; None if the two entries
    on the terminal differ."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\n")
    elif sys.stdin.isatty():
        password = getpass.getpass("Password (empty: generate one): ")
        if password and password != getpass.getpass("Repeat: "):
            print("error: passwords differ", file=sys.stderr)
            return None
    else:
        password = ""
    if not password:
        return secrets.token_urlsafe(12), True
    return password, False


async def _user(args: argparse.Namespace) -> int:
    password, generated = "", False
    if args.user_command in ("add", "passwd"):
        read = _read_password(args.password_stdin)
        if read is None:
            return 2
        password, generated = read
    prepare_data_dir(args.data_dir)
    store = await _open_store(args)
    try:
        staff = StaffDirectory(store)
        if args.user_command == "add":
            member = await staff.add(args.name, password, args.role, args.office, args.language)
            print(f"added {member.role} {member.username} ({', '.join(member.offices)})")
        elif args.user_command == "list":
            for m in await staff.members():
                state = "disabled" if m.disabled else "active"
                print(f"{m.username}\t{m.role}\t{','.join(m.offices)}\t{','.join(m.languages)}\t{state}")
            return 0
        elif args.user_command == "disable":
            member = await staff.set_disabled(args.name)
            print(f"disabled {member.username}")
        elif args.user_command == "enable":
            member = await staff.set_disabled(args.name, False)
            print(f"enabled {member.username}")
        else:
            member = await staff.set_password(args.name, password)
            print(f"new password set for {member.username}")
    except StaffError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    finally:
        await store.close()
    if generated:
        print(f"password: {password}")
    return 0


async def _keys_rotate(args: argparse.Namespace) -> int:
    """With the key file: generate a new active key. With configured keys: the operator put the new
    one first. Either way every document key is re-wrapped under the active master key."""
    prepare_data_dir(args.data_dir)
    store = await _open_store(args)
    try:
        ring = KeyRing(args.data_dir, args.document_keys)
        previous = ring.active_id
        if not ring.configured:
            ring.add_file_key()
        service = DocumentService(store, args.data_dir, ring)
        try:
            result = await service.rewrap()
        finally:
            await service.close()
        retired: list[str] = []
        if not ring.configured and not args.keep_retired:
            retired = sorted(ring.ids() - set(result["in_use"]) - {ring.active_id})
            ring.drop_file_keys(set(retired))
    except KeyRingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        await store.close()
    report = {"active": result["active"], "previous": previous, "rewrapped": result["rewrapped"]}
    print(json.dumps(report | {"retired": retired}))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # `serve --workers` repeats it for each worker
    try:
        if args.command == "serve":
            _serve(args)
            return 0
        if args.command == "room":
            return asyncio.run(_room_create(args))
        if args.command == "keys":
            return asyncio.run(_keys_rotate(args))
        if args.command == "availability":
            return asyncio.run(_availability(args))
        if args.command == "kb":
            return asyncio.run(chatbot_cli.run(args, _open_store))
        return asyncio.run(_user(args))
    except StoreUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OfficeConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KnowledgeError as exc:  # the chatbot's city file
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except CityConfigError as exc:  # the city file (--city)
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
