"""Configuration: defaults → SPRECHSTUNDE_* environment → command-line flags."""

from __future__ import annotations

import os
import re
import secrets
import socket
from dataclasses import dataclass, field
from pathlib import Path

from sprechstunde.media.ice import IceConfig
from sprechstunde.media.ice_policy import IcePolicy

ENV_PREFIX = "SPRECHSTUNDE_"
SECRET_FILE = "server-secret"
DATABASE_FILE = "sprechstunde.sqlite3"
NODE_ID = re.compile(r"[A-Za-z0-9_-]{1,40}")


def env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(ENV_PREFIX + name, default)


def env_list(name: str) -> list[str]:
    return [item.strip() for item in (env(name) or "").split(",") if item.strip()]


@dataclass
class Config:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("data")
    base_url: str | None = None
    stun_urls: list[str] = field(default_factory=list)
    turn_urls: list[str] = field(default_factory=list)
    turn_secret: str | None = None
    media_addresses: list[str] = field(default_factory=list)
    # remote ICE addresses the media server may contact (media/ice_policy.py): CIDRs; empty allow: any
    # not denied. Link-local, multicast, broadcast, unspecified are never contacted, loopback only when
    # media_addresses is loopback.
    ice_allow: list[str] = field(default_factory=list)
    ice_deny: list[str] = field(default_factory=list)
    media_mode: str = "forward"
    demo: bool = True
    # documents: master keys "kid:base64[,kid:base64…]" (first active; else the 0600 file in data_dir)
    document_keys: str | None = field(default=None, repr=False)
    max_file_mb: float = 25
    max_room_mb: float = 100
    retention_days: float = 7
    metadata_days: float = 90
    retention_interval: float = 600
    # tickets: the question/notes, contact address and topic are erased this many days after closing
    ticket_retention_days: float = 30
    download_ttl: float = 60
    # waiting room: the offices file (None: the demo rooms/offices.toml) and the default holiday state
    offices_path: Path | None = None
    holiday_state: str | None = None
    # chatbot: the city's override file (url, address, fees, note per topic; chatbot/city.example.toml)
    chatbot_city: Path | None = None
    # chatbot: the topic files (None: the generic ones shipped in chatbot/knowledge)
    chatbot_knowledge: Path | None = None
    # shared state for several processes; None: the embedded SQLite file in data_dir
    redis_url: str | None = field(default=None, repr=False)
    redis_prefix: str | None = None
    # this process's name among several on one Redis (None: <host name>-<port>)
    node_id: str | None = None
    # operations (web/observability.py): who may read /metrics — addresses/CIDRs, or the bearer token
    metrics_allow: list[str] = field(default_factory=lambda: ["127.0.0.1/32", "::1/128"])
    metrics_token: str | None = field(default=None, repr=False)
    # reverse proxies whose X-Forwarded-For/-Proto are believed (web/proxy.py); empty: none
    trusted_proxies: list[str] = field(default_factory=list)
    # scheduling: bookable services per office (None: the demo scheduling/services.toml) and SMTP for
    # confirmation/reminder mails (no smtp_host: no mail is sent, the pages say so)
    services_path: Path | None = None
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    smtp_sender: str = "Sprechstunde <termine@localhost>"
    smtp_security: str = "starttls"

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
            turn_urls=self.turn_urls,
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
