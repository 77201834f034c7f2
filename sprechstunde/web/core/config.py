"""Configuration: every setting declared once — a `Config` field made with `setting(…)` — from which the
command line (web/core/options.py), the SPRECHSTUNDE_* environment variables and the help texts follow.
Precedence: the declared default → the environment → a flag on the command line."""

from __future__ import annotations

import argparse
import os
import re
import secrets
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from functools import cache
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

from sprechstunde.media.ice import IceConfig, tls_turn_url
from sprechstunde.media.ice_policy import IcePolicy
from sprechstunde.media.session import MEDIA_MODES
from sprechstunde.scheduling.mail import SECURITY
from sprechstunde.store import DEFAULT_PREFIX
from sprechstunde.web.core.workers import worker_count

ENV_PREFIX = "SPRECHSTUNDE_"
SECRET_FILE = "server-secret"
DATABASE_FILE = "sprechstunde.sqlite3"
NODE_ID = re.compile(r"[A-Za-z0-9_-]{1,40}")
_SETTING = "setting"  # the key of a Config field's metadata that makes it a setting


@dataclass(frozen=True)
class Setting:
    """One setting: a Config field that is also a flag and a SPRECHSTUNDE_* variable. `name`, `kind`
    and `default` come from the field itself (settings()), so they are written down only there."""

    env: str  # the variable without the prefix, e.g. "PORT"
    help: str
    flag: str | None = None  # default: --<name with dashes>
    shown: str | None = None  # what the help shows after the variable; None: derived from the default
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    parse: Callable[[str], Any] | None = None  # one value from its text; default: the field's type
    common: bool = False  # also an option of every subcommand that opens the store (data dir, Redis)
    flags_replace_env: bool = False  # lists: flags extend the environment's list, unless this
    name: str = ""
    kind: type = str  # str, int, float, Path, bool (a switch) or list (of str, repeatable)
    default: Any = None

    @property
    def variable(self) -> str:
        return ENV_PREFIX + self.env

    @property
    def option(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    def help_text(self) -> str:
        """The help as `serve --help` shows it: the text, then [VARIABLE, default]."""
        shown = self.shown
        if shown is None:
            if self.kind is bool:
                shown = "=1"
            elif self.kind is list:
                shown = ", comma-separated" + (f"; {','.join(self.default)}" if self.default else "")
            else:
                shown = "" if self.default is None else f", {self.default}"
        return f"{self.help} [{self.variable}{shown}]".strip().replace("%", "%%")

    def convert(self, text: str) -> Any:
        """One value from its text (a flag's argument or the variable)."""
        if self.parse is not None:
            return self.parse(text)
        return text if self.kind in (str, list) else self.kind(text)

    def from_env(self, environ: Mapping[str, str] = os.environ) -> Any:
        """The value the environment gives, or the default. An empty variable is the default, except
        for text settings (kept as the empty text) and a path that has a default (the current dir)."""
        raw = environ.get(self.variable)
        if self.kind is list:
            return [item.strip() for item in (raw or "").split(",") if item.strip()] or list(self.default)
        if raw is None:
            return self.default
        if self.kind is bool:
            return (not self.default) if raw == "1" else self.default
        if raw == "" and self.kind is not str and (self.kind in (int, float) or self.default is None):
            return self.default
        try:
            return self.convert(raw)
        except (ValueError, argparse.ArgumentTypeError) as exc:
            if self.parse is None:
                raise SystemExit(f"{self.variable} must be a number, not {raw!r}") from None
            raise SystemExit(f"{self.variable}: {exc}") from None


def positive_days(text: str, what: str) -> float:
    """A number of days > 0 (a retention time of 0 would keep nothing, a negative one is a typo)."""
    try:
        days = float(text)
    except ValueError:
        days = 0.0
    if not days > 0 or days == float("inf"):
        raise argparse.ArgumentTypeError(f"{what}: {text!r} is not a number of days > 0")
    return days


def setting(default: Any, env: str, help: str = "", *, repr: bool = True, **details: Any) -> Any:
    """A Config field declared as a setting (see Setting for `details`)."""
    metadata = {_SETTING: Setting(env=env, help=help, **details)}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), repr=repr, metadata=metadata)
    return field(default=default, repr=repr, metadata=metadata)


def _kind(hint: Any) -> type:
    if get_origin(hint) is list:
        return list
    return next((arg for arg in get_args(hint) if arg is not type(None)), hint)


@cache
def settings() -> tuple[Setting, ...]:
    """Every setting, in the order `serve --help` lists them, with its name, kind and default."""
    hints = get_type_hints(Config)
    found = []
    for f in fields(Config):
        if _SETTING in f.metadata:
            default = f.default_factory() if callable(f.default_factory) else f.default
            found.append(
                replace(f.metadata[_SETTING], name=f.name, kind=_kind(hints[f.name]), default=default)
            )
    return tuple(found)


@dataclass
class Config:
    # --- every command that opens the store
    data_dir: Path = setting(
        Path("data"),
        "DATA_DIR",
        "directory for the server secret and the SQLite file",
        shown=", ./data",
        common=True,
    )
    # shared state for several processes; None: the embedded SQLite file in data_dir
    redis_url: str | None = setting(
        None,
        "REDIS_URL",
        "keep shared state in Redis instead of the SQLite file, e.g. redis://127.0.0.1:6379/0; needed when "
        "several server processes serve one city",
        flag="--redis",
        metavar="URL",
        common=True,
        repr=False,
    )
    redis_prefix: str = setting(DEFAULT_PREFIX, "REDIS_PREFIX", "prefix of every Redis key", common=True)
    # --- serve: network and nodes
    host: str = setting("127.0.0.1", "HOST", "address to listen on")
    port: int = setting(8080, "PORT", "TCP port")
    base_url: str | None = setting(
        None,
        "BASE_URL",
        "public URL used in join links, e.g. https://video.stadt.de",
        shown=", http://HOST:PORT",
    )
    stun_urls: list[str] = setting(
        [], "STUN_URLS", "STUN server handed to browsers, repeatable", flag="--stun-url"
    )
    turn_urls: list[str] = setting([], "TURN_URLS", "TURN server URL (coturn), repeatable", flag="--turn-url")
    turn_secret: str | None = setting(
        None, "TURN_SECRET", "coturn static-auth-secret for time-limited credentials"
    )
    turn_tls_url: str | None = setting(
        None,
        "TURN_TLS_URL",
        "TURN over TLS on port 443, offered next to --turn-url for networks that open only 443, e.g. "
        "turns:video.stadt.de:443?transport=tcp (deploy/nginx.conf routes it to coturn)",
        parse=tls_turn_url,
        metavar="URL",
    )
    media_addresses: list[str] = setting(
        [],
        "MEDIA_ADDRESSES",
        "IP address the media server announces as ICE host candidate, repeatable; default: all interfaces "
        "but loopback",
        flag="--media-address",
    )
    # remote ICE addresses the media server may contact (media/ice_policy.py): CIDRs; empty allow: any
    # not denied. Link-local, multicast, broadcast, unspecified are never contacted, loopback only when
    # media_addresses is loopback.
    ice_allow: list[str] = setting(
        [],
        "ICE_ALLOW",
        "only send ICE checks to participants' addresses in these networks, repeatable; default: any "
        "address not denied",
        metavar="CIDR",
    )
    ice_deny: list[str] = setting(
        [],
        "ICE_DENY",
        "never send ICE checks to these networks, e.g. 10.0.0.0/8 for a server that serves only the "
        "internet; link-local, multicast, broadcast and unspecified addresses are never contacted, loopback "
        "only when --media-address is loopback",
        metavar="CIDR",
    )
    media_mode: str = setting(
        "forward",
        "MEDIA_MODE",
        "forward: pass encoded media through; transcode: decode and re-encode every stream, the baseline "
        "for bench/media_relay.py",
        choices=MEDIA_MODES,
    )
    workers: int = setting(
        1,
        "WORKERS",
        "server processes on this machine, sharing --redis: N, or auto for one per core; this one serves "
        "the port and relays to the others (web/core/workers.py)",
        parse=worker_count,
        metavar="N",
    )
    # this process's name among several on one Redis (None: <host name>-<port>)
    node_id: str | None = setting(
        None,
        "NODE_ID",
        "this process's name among several sharing Redis (letters, digits, - and _); the reverse proxy "
        "routes ?node=<id> to it",
        shown=", <host name>-<port>",
    )
    demo: bool = setting(
        True, "NO_DEMO", "do not create the demo staff account on first start", flag="--no-demo"
    )
    # --- documents: master keys "kid:base64[,kid:base64…]" (first active; else the 0600 file in data_dir)
    document_keys: str | None = setting(
        None,
        "DOCUMENT_KEYS",
        "master keys for documents, the first one active, e.g. k1:$(openssl rand -base64 32); default: the "
        "file document-keys (mode 0600) in the data directory, created on first start",
        metavar="KID:BASE64[,…]",
        repr=False,
    )
    max_file_mb: float = setting(25, "MAX_FILE_MB", "largest document that can be shared, in MB")
    max_room_mb: float = setting(100, "MAX_ROOM_MB", "total size of a room's documents, in MB")
    retention_days: float = setting(
        7, "RETENTION_DAYS", "documents and links are deleted this many days after the consultation ends"
    )
    metadata_days: float = setting(
        90, "METADATA_DAYS", "document metadata and audit entries are deleted after this many days"
    )
    retention_interval: float = setting(
        600, "RETENTION_INTERVAL", "seconds between runs of the retention job (it also runs at start-up)"
    )
    ticket_retention_days: float = setting(
        30,
        "TICKET_RETENTION_DAYS",
        "a closed ticket's question or notes, contact address and topic are erased this many days after it "
        "was closed",
    )
    chat_retention_days: float = setting(
        30,
        "CHAT_RETENTION_DAYS",
        "chatbot conversations are deleted this many days after their last message",
        parse=lambda text: positive_days(text, "chat retention"),
    )
    download_ttl: float = 60  # seconds a signed download link stays valid (no option)
    # --- the waiting room: the offices file (None: the demo rooms/offices.toml), the holiday state
    offices_path: Path | None = setting(
        None,
        "OFFICES",
        "offices, service hours, closures and languages (TOML); default: the demo offices (vhs, "
        "familienbuero, buergertelefon, standesamt) of sprechstunde/rooms/offices.toml",
        flag="--offices",
        metavar="FILE",
    )
    holiday_state: str | None = setting(
        None,
        "HOLIDAY_STATE",
        "federal state whose public holidays close the offices, e.g. NW, BY; overrides the offices file's "
        "top level, an office's own setting still wins",
        metavar="CODE",
    )
    # --- operations (web/core/observability.py): logs; who may read /metrics (addresses/CIDRs, or the token)
    log_level: str = setting("info", "LOG_LEVEL", choices=("debug", "info", "warning", "error"))
    log_format: str = setting(
        "text",
        "LOG_FORMAT",
        "json: one JSON object per line (time, level, logger, message, request_id, room_id) for a log "
        "collector",
        choices=("text", "json"),
    )
    metrics_allow: list[str] = setting(
        ["127.0.0.1/32", "::1/128"],
        "METRICS_ALLOW",
        "addresses allowed to read /metrics, repeatable, e.g. 10.0.0.0/8",
        metavar="CIDR",
        flags_replace_env=True,
    )
    metrics_token: str | None = setting(
        None,
        "METRICS_TOKEN",
        "also allow /metrics with 'Authorization: Bearer TOKEN' from any address",
        repr=False,
    )
    # reverse proxies whose X-Forwarded-For/-Proto are believed (web/core/proxy.py); empty: none
    trusted_proxies: list[str] = setting(
        [],
        "TRUSTED_PROXIES",
        "reverse proxy whose X-Forwarded-For/X-Forwarded-Proto are believed (client address for rate "
        "limits and /metrics, https for cookies), repeatable, e.g. 127.0.0.1",
        flag="--trusted-proxy",
        metavar="CIDR",
    )
    # --- scheduling: bookable services per office (None: the demo scheduling/services.toml) and SMTP for
    # confirmation/reminder mails (no smtp_host: no mail is sent, the pages say so)
    services_path: Path | None = setting(
        None,
        "SERVICES",
        "bookable services per office (TOML); default: the demo file sprechstunde/scheduling/services.toml",
        flag="--services",
        metavar="FILE",
    )
    smtp_host: str | None = setting(
        None,
        "SMTP_HOST",
        "SMTP server for booking confirmations and reminders; without it no mail is sent",
    )
    smtp_port: int = setting(587, "SMTP_PORT")
    smtp_username: str | None = setting(None, "SMTP_USER", "SMTP login", flag="--smtp-user")
    smtp_password: str | None = setting(
        None, "SMTP_PASSWORD", "SMTP password; prefer the environment variable", repr=False
    )
    smtp_sender: str = setting(
        "Sprechstunde <termine@localhost>", "SMTP_FROM", "sender address of booking mails", flag="--smtp-from"
    )
    smtp_security: str = setting(
        "starttls",
        "SMTP_SECURITY",
        "starttls (port 587), tls (port 465) or none (a local relay)",
        choices=SECURITY,
    )
    # --- chatbot: the topic files (None: the generic ones shipped in chatbot/knowledge) and the city's
    # override file (url, address, fees, note per topic; chatbot/city.example.toml)
    chatbot_knowledge: Path | None = setting(
        None,
        "CHATBOT_KNOWLEDGE",
        "directory of the chatbot's topic files (*.yaml); default: the generic ones shipped in "
        "sprechstunde/chatbot/knowledge",
        metavar="DIR",
    )
    chatbot_city: Path | None = setting(
        None,
        "CHATBOT_CITY",
        "the city's chatbot overrides (TOML: url, address, fees, note per topic; see "
        "sprechstunde/chatbot/city.example.toml)",
        metavar="FILE",
    )
    # --- the phone line (sprechstunde/phone): off unless --sip-listen is given; the trunk is let in by
    # address (--sip-allow) or digest credentials (--sip-user/--sip-password), everybody else gets 403
    sip_listen: str | None = setting(
        None,
        "SIP_LISTEN",
        "address:port of the SIP endpoint for the city's PBX or SIP trunk (UDP and TCP), e.g. 0.0.0.0:5060; "
        "default: no phone line",
        metavar="HOST:PORT",
    )
    sip_allow: list[str] = setting(
        [],
        "SIP_ALLOW",
        "addresses of the PBX or SIP trunk allowed to call in without credentials, repeatable",
        metavar="CIDR",
    )
    sip_username: str | None = setting(
        None, "SIP_USER", "digest user name the trunk authenticates with", flag="--sip-user"
    )
    sip_password: str | None = setting(
        None, "SIP_PASSWORD", "digest password of the trunk; prefer the environment variable", repr=False
    )
    sip_tls_cert: Path | None = setting(
        None,
        "SIP_TLS_CERT",
        "certificate (PEM) for SIP over TLS, on --sip-tls-port",
        metavar="FILE",
    )
    sip_tls_key: Path | None = setting(
        None, "SIP_TLS_KEY", "private key (PEM) of --sip-tls-cert", metavar="FILE"
    )
    sip_tls_port: int | None = setting(
        None,
        "SIP_TLS_PORT",
        "port of SIP over TLS (with --workers N: of the first process, the others on the next ones); "
        "default: the port after the last --sip-listen port",
        metavar="PORT",
    )
    sip_calls_per_minute: int = setting(
        30, "SIP_CALLS_PER_MINUTE", "new calls accepted per source address and minute (more get 503)"
    )
    sip_max_calls: int = setting(30, "SIP_MAX_CALLS", "calls at the same time, at most 30 (more get 503)")
    phone_announce_seconds: float = setting(
        45, "PHONE_ANNOUNCE_SECONDS", "a waiting caller hears position and estimate this often (30-60 s)"
    )
    phone_hold_music: Path | None = setting(
        None,
        "PHONE_HOLD_MUSIC",
        "WAV file played to waiting callers between announcements; default: silence",
        metavar="FILE",
    )
    # --- the city's pages (web/city): accessibility statement, Leichte Sprache, sign language, privacy
    # notice, imprint; None: the example city, marked as an example on every one of those pages
    city_path: Path | None = setting(
        None,
        "CITY",
        "the city file (TOML): accessibility statement, Leichte Sprache, sign-language video, privacy "
        "notice and imprint, also the chatbot's [topics.*] when --chatbot-city is not given; default: the "
        "example city of sprechstunde/web/city/city.example.toml",
        flag="--city",
        metavar="FILE",
    )

    @property
    def public_url(self) -> str:
        return (self.base_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def node_name(self) -> str:
        return self.node_id or f"{socket.gethostname()}-{self.port}"

    @property
    def node_address(self) -> str | None:
        """host:port where other nodes reach this one directly; None when listening on every address
        (then nobody knows which one) — a reverse proxy routes `?node=` instead."""
        if self.host in ("", "0.0.0.0", "::"):
            return None
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def ice(self) -> IceConfig:
        return IceConfig(
            stun_urls=self.stun_urls,
            turn_urls=[*self.turn_urls, *([self.turn_tls_url] if self.turn_tls_url else [])],
            turn_secret=self.turn_secret,
            policy=IcePolicy.build(self.ice_allow, self.ice_deny, self.media_addresses),
        )

    @property
    def database_path(self) -> Path:
        return self.data_dir / DATABASE_FILE


def prepare_data_dir(data_dir: Path) -> bytes:
    """Create the data directory and return the server secret, generating it (mode 0600) once."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = data_dir / SECRET_FILE
    if not path.exists():
        # Written aside and linked into place, so a process starting at the same moment (serve and
        # `room create`) either sees no file or a complete one, never an empty one.
        draft = data_dir / f".{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(draft, path)
        except FileExistsError:
            pass  # another process won; use its secret
        finally:
            draft.unlink()
    secret = bytes.fromhex(path.read_text().strip())
    if len(secret) < 32:
        raise SystemExit(f"{path} holds a secret shorter than 32 bytes; delete it to regenerate")
    return secret
