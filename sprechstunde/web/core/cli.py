"""`sprechstunde` command line: serve, room create, user add|list|disable|passwd, keys rotate.

Every option can also be set as an environment variable SPRECHSTUNDE_<OPTION> (e.g.
SPRECHSTUNDE_DATA_DIR); a flag on the command line wins.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import secrets
import sys
from pathlib import Path

from sprechstunde.chatbot.knowledge import KnowledgeError
from sprechstunde.documents import DocumentService, KeyRing, KeyRingError
from sprechstunde.media.session import MEDIA_MODES
from sprechstunde.rooms.offices import OfficeConfigError, load_offices
from sprechstunde.rooms.service import RoomError, RoomService, parse_duration
from sprechstunde.rooms.staff import STAFF_ROLES, StaffDirectory, StaffError
from sprechstunde.rooms.tokens import TokenSigner
from sprechstunde.scheduling.availability import ensure_pattern
from sprechstunde.store import DEFAULT_PREFIX, Store, StoreUnavailable, open_store, ready
from sprechstunde.web.booking import cli as booking_cli
from sprechstunde.web.chatbot import cli as chatbot_cli
from sprechstunde.web.core.config import DATABASE_FILE, NODE_ID, Config, env, env_list, prepare_data_dir
from sprechstunde.web.core.workers import Workers, worker_count

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
    parser.add_argument(
        "--redis",
        default=env("REDIS_URL"),
        metavar="URL",
        help="keep shared state in Redis instead of the SQLite file, e.g. redis://127.0.0.1:6379/0; "
        "needed when several server processes serve one city [SPRECHSTUNDE_REDIS_URL]",
    )
    parser.add_argument(
        "--redis-prefix",
        default=env("REDIS_PREFIX", DEFAULT_PREFIX),
        help=f"prefix of every Redis key [SPRECHSTUNDE_REDIS_PREFIX, {DEFAULT_PREFIX}]",
    )


async def _open_store(args: argparse.Namespace) -> Store:
    """The configured store, checked to be reachable (StoreUnavailable otherwise)."""
    store = open_store(args.data_dir / DATABASE_FILE, redis_url=args.redis, redis_prefix=args.redis_prefix)
    try:
        await ready(store)
    except StoreUnavailable:
        await store.close()
        raise
    return store


def _document_keys(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--document-keys",
        default=env("DOCUMENT_KEYS"),
        metavar="KID:BASE64[,…]",
        help="master keys for documents, the first one active, e.g. k1:$(openssl rand -base64 32); "
        "default: the file document-keys (mode 0600) in the data directory, created on first start "
        "[SPRECHSTUNDE_DOCUMENT_KEYS]",
    )


def _number(name: str, default: float) -> float:
    value = env(name)
    try:
        return float(value) if value else default
    except ValueError:
        raise SystemExit(f"SPRECHSTUNDE_{name} must be a number, not {value!r}") from None


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
        "--ice-allow",
        action="append",
        default=env_list("ICE_ALLOW"),
        metavar="CIDR",
        help="only send ICE checks to participants' addresses in these networks, repeatable; default: any "
        "address not denied [SPRECHSTUNDE_ICE_ALLOW, comma-separated]",
    )
    serve.add_argument(
        "--ice-deny",
        action="append",
        default=env_list("ICE_DENY"),
        metavar="CIDR",
        help="never send ICE checks to these networks, e.g. 10.0.0.0/8 for a server that serves only the "
        "internet; link-local, multicast, broadcast and unspecified addresses are never contacted, loopback "
        "only when --media-address is loopback [SPRECHSTUNDE_ICE_DENY, comma-separated]",
    )
    serve.add_argument(
        "--media-mode",
        choices=MEDIA_MODES,
        default=env("MEDIA_MODE", "forward"),
        help="forward: pass encoded media through (default); transcode: decode and re-encode every "
        "stream, the baseline for bench/media_relay.py [SPRECHSTUNDE_MEDIA_MODE]",
    )
    serve.add_argument(
        "--workers",
        type=worker_count,
        default=worker_count(env("WORKERS", "1") or "1"),
        metavar="N",
        help="server processes on this machine, sharing --redis: N, or auto for one per core; this one "
        "serves the port and relays to the others (web/workers.py) [SPRECHSTUNDE_WORKERS, 1]",
    )
    serve.add_argument(
        "--node-id",
        default=env("NODE_ID"),
        help="this process's name among several sharing Redis (letters, digits, - and _); the reverse "
        "proxy routes ?node=<id> to it [SPRECHSTUNDE_NODE_ID, <host name>-<port>]",
    )
    serve.add_argument(
        "--no-demo",
        action="store_true",
        default=env("NO_DEMO") == "1",
        help="do not create the demo staff account on first start [SPRECHSTUNDE_NO_DEMO=1]",
    )
    _document_keys(serve)
    serve.add_argument(
        "--max-file-mb",
        type=float,
        default=_number("MAX_FILE_MB", 25),
        help="largest document that can be shared, in MB [SPRECHSTUNDE_MAX_FILE_MB, 25]",
    )
    serve.add_argument(
        "--max-room-mb",
        type=float,
        default=_number("MAX_ROOM_MB", 100),
        help="total size of a room's documents, in MB [SPRECHSTUNDE_MAX_ROOM_MB, 100]",
    )
    serve.add_argument(
        "--retention-days",
        type=float,
        default=_number("RETENTION_DAYS", 7),
        help="documents and links are deleted this many days after the consultation ends "
        "[SPRECHSTUNDE_RETENTION_DAYS, 7]",
    )
    serve.add_argument(
        "--metadata-days",
        type=float,
        default=_number("METADATA_DAYS", 90),
        help="document metadata and audit entries are deleted after this many days "
        "[SPRECHSTUNDE_METADATA_DAYS, 90]",
    )
    serve.add_argument(
        "--retention-interval",
        type=float,
        default=_number("RETENTION_INTERVAL", 600),
        help="seconds between runs of the retention job (it also runs at start-up) "
        "[SPRECHSTUNDE_RETENTION_INTERVAL, 600]",
    )
    serve.add_argument(
        "--ticket-retention-days",
        type=float,
        default=_number("TICKET_RETENTION_DAYS", 30),
        help="a closed ticket's question or notes, contact address and topic are erased this many days "
        "after it was closed [SPRECHSTUNDE_TICKET_RETENTION_DAYS, 30]",
    )
    serve.add_argument(
        "--offices",
        type=Path,
        default=Path(env("OFFICES")) if env("OFFICES") else None,
        metavar="FILE",
        help="offices, service hours, closures and languages (TOML); default: the demo offices "
        "(vhs, familienbuero, buergertelefon, standesamt) of rooms/offices.toml [SPRECHSTUNDE_OFFICES]",
    )
    serve.add_argument(
        "--holiday-state",
        default=env("HOLIDAY_STATE"),
        metavar="CODE",
        help="federal state whose public holidays close the offices, e.g. NW, BY; overrides the "
        "offices file's top level, an office's own setting still wins [SPRECHSTUNDE_HOLIDAY_STATE]",
    )
    serve.add_argument(
        "--log-level",
        default=env("LOG_LEVEL", "info"),
        choices=["debug", "info", "warning", "error"],
        help="[SPRECHSTUNDE_LOG_LEVEL, info]",
    )
    booking_cli.add_serve_options(serve)  # --services, --smtp-*
    chatbot_cli.add_serve_options(serve)  # --chatbot-knowledge, --chatbot-city
    serve.add_argument(
        "--log-format",
        default=env("LOG_FORMAT", "text"),
        choices=["text", "json"],
        help="json: one JSON object per line (time, level, logger, message, request_id, room_id) for a "
        "log collector [SPRECHSTUNDE_LOG_FORMAT, text]",
    )
    serve.add_argument(
        "--metrics-allow",
        action="append",
        metavar="CIDR",
        help="addresses allowed to read /metrics, repeatable, e.g. 10.0.0.0/8 "
        "[SPRECHSTUNDE_METRICS_ALLOW, comma-separated; 127.0.0.1/32,::1/128]",
    )
    serve.add_argument(
        "--metrics-token",
        default=env("METRICS_TOKEN"),
        help="also allow /metrics with 'Authorization: Bearer TOKEN' from any address "
        "[SPRECHSTUNDE_METRICS_TOKEN]",
    )
    serve.add_argument(
        "--trusted-proxy",
        action="append",
        default=env_list("TRUSTED_PROXIES"),
        metavar="CIDR",
        help="reverse proxy whose X-Forwarded-For/X-Forwarded-Proto are believed (client address for rate "
        "limits and /metrics, https for cookies), repeatable, e.g. 127.0.0.1 [SPRECHSTUNDE_TRUSTED_PROXIES]",
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
    _common(rotate)
    _document_keys(rotate)
    rotate.add_argument(
        "--keep-retired",
        action="store_true",
        help="keep the old master keys in the key file (default: delete those no document uses any more)",
    )
    booking_cli.add_parser(commands, _common)  # availability show|set
    chatbot_cli.add_parser(commands, _common)  # kb reload|import-pages
    return parser


def _serve(args: argparse.Namespace) -> None:
    from aiohttp import web

    from sprechstunde.media.ice_policy import IcePolicy
    from sprechstunde.networks import parse_networks
    from sprechstunde.web.core.app import create_app
    from sprechstunde.web.core.observability import (
        DEFAULT_METRICS_ALLOW,
        AccessLogger,
        parse_allowlist,
        setup_logging,
    )

    setup_logging(args.log_level, args.log_format)
    metrics_allow = args.metrics_allow or env_list("METRICS_ALLOW") or list(DEFAULT_METRICS_ALLOW)
    try:
        parse_allowlist(metrics_allow)
        parse_networks(args.trusted_proxy, "--trusted-proxy")
        IcePolicy.build(args.ice_allow, args.ice_deny)  # a bad CIDR stops start-up in one line
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    config = Config(
        host=args.host,
        port=args.port,
        data_dir=args.data_dir,
        base_url=args.base_url,
        stun_urls=args.stun_url,
        turn_urls=args.turn_url,
        turn_secret=args.turn_secret,
        media_addresses=args.media_address,
        ice_allow=args.ice_allow,
        ice_deny=args.ice_deny,
        media_mode=args.media_mode,
        demo=not args.no_demo,
        document_keys=args.document_keys,
        max_file_mb=args.max_file_mb,
        max_room_mb=args.max_room_mb,
        retention_days=args.retention_days,
        metadata_days=args.metadata_days,
        retention_interval=args.retention_interval,
        ticket_retention_days=args.ticket_retention_days,
        redis_url=args.redis,
        redis_prefix=args.redis_prefix,
        offices_path=args.offices,
        holiday_state=args.holiday_state,
        **booking_cli.serve_config(args),
        **chatbot_cli.serve_config(args),
        metrics_allow=metrics_allow,
        metrics_token=args.metrics_token,
        trusted_proxies=args.trusted_proxy,
        node_id=args.node_id,
    )
    if config.node_id is not None and not NODE_ID.fullmatch(config.node_id):
        raise SystemExit("error: --node-id may hold only letters, digits, - and _ (at most 40)")
    if args.workers > 1 and not config.redis_url:
        raise SystemExit("error: --workers needs --redis: the processes share their state through it")
    if config.redis_url:  # fail at once, in one line, when Redis cannot be reached
        asyncio.run(_check_store(args))
    if config.demo:
        print(asyncio.run(_ensure_demo(config)), flush=True)
    app = create_app(config)
    workers = Workers.plan(args.argv, args.workers, config.node_name, config.public_url)
    workers.start()
    print(f"Sprechstunde läuft auf / is running at {config.public_url}", flush=True)
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


if __name__ == "__main__":
    sys.exit(main())
