"""deploy/: what can be checked without Docker, with the real tools a city's server runs.

- nginx.conf: `nginx -t` on the file as shipped, then a real nginx (ports and upstreams moved to free
  ones) in front of two real `sprechstunde serve` processes: TLS, WebSocket upgrade, both participants of a
  room on one node, rooms spread over both, /metrics not reachable through the proxy.
- turnserver.conf: coturn starts with it without "Bad configuration" lines and grants a TURN allocation,
  over UDP and TLS, to exactly the credentials a node hands out (media/ice.py), and refuses others.
- docker-compose.yml: valid against the vendored compose-spec JSON schema, and consistent with itself
  (ports, shared volume, secrets, AOF).
- Dockerfile, systemd units, env examples: every path, option and variable they name exists.

A missing tool fails with the package to install (./run test installs them); nothing is skipped.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import re
import shlex
import shutil
import signal
import ssl
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import aiohttp
import jsonschema
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bench.server import ServerProcess, free_port, free_udp_and_tcp_port, free_udp_port
from sprechstunde.media.ice import turn_credentials
from sprechstunde.web.core.cli import build_parser
from sprechstunde.web.core.config import settings
from tests.test_readiness import RedisServer
from tests.test_turn import wait_for_stun

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
SECRET = "turn-secret-of-the-test"


def tool(name: str, package: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")
    if path is None:
        pytest.fail(f"{name} is missing: apt-get install {package} (./run test installs it)")
    return path


def self_signed(directory: Path, name: str = "localhost") -> None:
    """fullchain.pem + privkey.pem, as certbot lays them out."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    (directory / "fullchain.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "privkey.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )


# --- nginx -------------------------------------------------------------------------------------------


def nginx_modules(prefix: Path) -> None:
    """Debian's modules-enabled/*.conf load the stream module by a path relative to nginx's prefix (-p):
    the test's prefix gets the package's modules directory."""
    if not (Path("/etc/nginx/modules-enabled") / "50-mod-stream.conf").exists():
        pytest.fail("nginx's stream module is missing: apt-get install libnginx-mod-stream (./run test)")
    (prefix / "modules").symlink_to("/usr/share/nginx/modules")


def test_nginx_conf_passes_nginx_t(tmp_path):
    nginx = tool("nginx", "nginx")
    shutil.copy(DEPLOY / "nginx.conf", tmp_path / "nginx.conf")
    self_signed(tmp_path / "certs")
    nginx_modules(tmp_path)
    result = subprocess.run(
        [nginx, "-t", "-c", str(tmp_path / "nginx.conf"), "-p", f"{tmp_path}/", "-e", "stderr"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def render_nginx(tmp_path: Path, http: int, https: int, nodes: list[int], turn_tls: int = 5349) -> Path:
    """The shipped config with test-local ports (`https`: the stream block's 443, `turn_tls`: coturn's
    TLS port), pid, logs, sockets and temp paths; nothing else changed."""
    text = (DEPLOY / "nginx.conf").read_text()
    replacements = [
        ("pid /run/nginx.pid;", f"pid {tmp_path}/nginx.pid;"),
        ("access_log /dev/stdout privacy;", f"access_log {tmp_path}/access.log privacy;"),
        ("listen 80;", f"listen 127.0.0.1:{http};"),
        ("listen 443;", f"listen 127.0.0.1:{https};"),
        ("/run/nginx-https.sock", f"{tmp_path}/https.sock"),
        ("/run/nginx-turns.sock", f"{tmp_path}/turns.sock"),
        ("proxy_pass 127.0.0.1:5349;", f"proxy_pass 127.0.0.1:{turn_tls};"),
        ("server 127.0.0.1:8081", f"server 127.0.0.1:{nodes[0]}"),
        ("server 127.0.0.1:8082", f"server 127.0.0.1:{nodes[1]}"),
    ]
    for old, new in replacements:
        assert old in text, f"deploy/nginx.conf no longer contains {old!r}"
        text = text.replace(old, new)
    text = "\n".join(line for line in text.splitlines() if "listen [::]" not in line)
    kinds = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    temp = [f"{kind}_temp_path {tmp_path}/{kind};" for kind in kinds]
    text = text.replace("http {\n", "http {\n    " + "\n    ".join(temp) + "\n", 1)
    for kind in kinds:
        (tmp_path / kind).mkdir(mode=0o777, exist_ok=True)
        os.chmod(tmp_path / kind, 0o777)  # workers run as nobody when the test runs as root
    if os.geteuid() == 0:
        # workers would run as nobody, who cannot enter pytest's 0700 directories (the unix sockets)
        text = text.replace("worker_processes auto;", "user root;\nworker_processes auto;", 1)
    self_signed(tmp_path / "certs")
    nginx_modules(tmp_path)
    path = tmp_path / "nginx.conf"
    path.write_text(text)
    return path


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sprechstunde", *args], capture_output=True, text=True, timeout=60, cwd=ROOT
    )


async def hello(http: aiohttp.ClientSession, base: str, room: dict, role: str) -> tuple:
    """Join as the browser does: /ws?room=<id>; on `wrong_node` once more at the URL the node names
    (/ws?node=<id> on the public address, which nginx routes to that node). (socket, welcome, hops)."""
    token = room[f"{role}_url"].rsplit("/join/", 1)[1]
    url = f"{base.replace('https', 'wss')}/ws?room={room['room_id']}"
    for hops in range(3):
        ws = await http.ws_connect(url, ssl=False)
        await ws.send_json({"type": "hello", "id": 1, "v": 1, "token": token, "name": role})
        while (message := await ws.receive_json(timeout=15))["type"] not in ("welcome", "error"):
            pass
        if message["type"] == "welcome":
            return ws, message, hops
        assert message["code"] == "wrong_node", message
        assert message["url"].startswith(base.replace("https", "wss") + "/ws?node="), message["url"]
        url = message["url"]
        await ws.close()
    raise AssertionError("redirected in a circle")


async def test_nginx_in_front_of_two_nodes_keeps_each_room_on_one_node(tmp_path):
    """As in docker-compose.yml: two nodes on one Redis (a throwaway server of this test) and one data
    directory, nginx with TLS in front."""
    nginx = tool("nginx", "nginx")
    redis_server = RedisServer(tmp_path / "redis", appendonly=False)
    redis_server.start()
    redis = ("--redis", redis_server.url)
    data = tmp_path / "data"  # one data directory for both nodes, as the compose file's shared volume
    rooms = []
    for _ in range(8):
        made = cli("room", "create", "--office", "vhs", "--data-dir", str(data), *redis)
        assert made.returncode == 0, made.stderr
        rooms.append(json.loads(made.stdout))
    added = subprocess.run(
        [sys.executable, "-m", "sprechstunde", "user", "add", "berater", "--office", "vhs",
         "--data-dir", str(data), "--password-stdin", *redis],
        input="richtig-langes-passwort\n", capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    http_port, https_port = free_port(), free_port()
    base = f"https://127.0.0.1:{https_port}"
    node_args = ("--trusted-proxy", "127.0.0.1", "--base-url", base, *redis)
    with (
        ServerProcess(data, *node_args, "--node-id", "node1", log_path=tmp_path / "node1.log") as node1,
        ServerProcess(data, *node_args, "--node-id", "node2", log_path=tmp_path / "node2.log") as node2,
    ):
        node1.wait_healthy(timeout=30)
        node2.wait_healthy(timeout=30)
        config = render_nginx(tmp_path, http_port, https_port, [node1.port, node2.port])
        proxy = subprocess.Popen(
            [nginx, "-c", str(config), "-p", f"{tmp_path}/", "-e", "stderr", "-g", "daemon off;"],
            stdout=subprocess.DEVNULL, stderr=open(tmp_path / "nginx.err", "wb"), start_new_session=True,
        )  # fmt: skip
        try:
            async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
                deadline = time.monotonic() + 10
                while True:
                    try:
                        async with http.get(base + "/healthz", ssl=False) as r:
                            assert r.status == 200
                            assert r.headers["Strict-Transport-Security"].startswith("max-age=")
                            assert re.fullmatch(r"[0-9a-f]{32}", r.headers["X-Request-Id"])  # nginx's id
                            break
                    except aiohttp.ClientConnectorError:
                        assert proxy.poll() is None, (tmp_path / "nginx.err").read_text()
                        assert time.monotonic() < deadline, "nginx did not listen"
                        await asyncio.sleep(0.1)
                async with http.get(f"http://127.0.0.1:{http_port}/join/x", allow_redirects=False) as r:
                    assert r.status == 301 and r.headers["Location"].startswith("https://")
                async with http.get(base + "/metrics", ssl=False) as r:
                    assert r.status == 404  # Prometheus scrapes the nodes, never the public name
                # sign-in over the proxy: the node sees https (Secure cookie) and the console socket's
                # same-origin check passes with the headers nginx forwards
                login = {"username": "berater", "password": "richtig-langes-passwort"}
                async with http.post(base + "/api/login", json=login, ssl=False) as r:
                    assert r.status == 200 and "Secure" in r.headers["Set-Cookie"]
                console = await http.ws_connect(base + "/ws/console", headers={"Origin": base}, ssl=False)
                assert (await console.receive_json(timeout=10))["type"] == "queue"
                await console.close()
                for room in rooms:
                    # citizen and advisor connect separately; the advisor's welcome lists the citizen
                    # only if both reached the same node
                    citizen, _, _ = await hello(http, base, room, "citizen")
                    advisor, welcome, _ = await hello(http, base, room, "advisor")
                    assert [p["role"] for p in welcome["participants"]] == ["citizen"], room["room_id"]
                    # a document of the room reaches the room's node: the citizen hears of it at once
                    async with http.post(
                        f"{base}/api/rooms/{room['room_id']}/links",
                        json={"url": "https://www.stadt.de/formular"},
                        headers={"X-Join-Token": room["advisor_url"].rsplit("/join/", 1)[1]},
                        ssl=False,
                    ) as r:
                        assert r.status == 201, await r.text()
                    while (event := await citizen.receive_json(timeout=10))["type"] != "document-added":
                        pass
                    assert event["document"]["type"] == "link"
                    # ?node= reaches exactly that node: the room's node welcomes, the other redirects to it
                    answers = {}
                    for node in ("node1", "node2"):
                        wss = base.replace("https", "wss")
                        ws = await http.ws_connect(f"{wss}/ws?node={node}", ssl=False)
                        token = room["citizen_url"].rsplit("/join/", 1)[1]
                        await ws.send_json({"type": "hello", "id": 1, "v": 1, "token": token})
                        answer = await ws.receive_json(timeout=15)
                        while answer["type"] not in ("welcome", "error"):
                            answer = await ws.receive_json(timeout=15)
                        answers[node] = answer
                        await ws.close()
                    kinds = sorted(a["type"] for a in answers.values())
                    assert kinds == ["error", "welcome"], answers
                    home = next(node for node, a in answers.items() if a["type"] == "welcome")
                    assert all(a.get("node") == home for a in answers.values() if a["type"] == "error")
                    await citizen.close()
                    await advisor.close()
        finally:
            os.killpg(proxy.pid, signal.SIGTERM)
            proxy.wait(timeout=10)
            redis_server.stop()
    lines = [json.loads(line) for line in (tmp_path / "access.log").read_text().splitlines()]
    by_room: dict[str, set[str]] = {}
    for line in lines:
        match = re.match(r"^/api/rooms/([^/]+)/", line["path"])
        if match:
            by_room.setdefault(match.group(1), set()).add(line["upstream"])
    assert len(by_room) == len(rooms) and all(len(upstreams) == 1 for upstreams in by_room.values())
    used = set().union(*by_room.values())
    assert used == {f"127.0.0.1:{node1.port}", f"127.0.0.1:{node2.port}"}, "rooms were not spread"
    # the access log holds no join tokens and no full client addresses
    log = (tmp_path / "access.log").read_text()
    assert all(room["citizen_url"].rsplit("/", 1)[1] not in log for room in rooms)
    assert '"client":"127.0.0.0"' in log and '"path":"/join/…"' in log


# --- coturn ------------------------------------------------------------------------------------------


class _Quiet:
    def connection_made(self, transport: object) -> None:
        pass

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        pass

    def error_received(self, exc: Exception) -> None:
        pass

    def connection_lost(self, exc: Exception | None) -> None:
        pass


async def allocate(port: int, username: str, password: str, transport: str = "udp") -> tuple:
    from aioice.turn import create_turn_endpoint

    context = None
    if transport == "tls":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    turn, _ = await asyncio.wait_for(
        create_turn_endpoint(
            _Quiet, ("127.0.0.1", port), username, password, ssl=context,
            transport="tcp" if transport == "tls" else "udp",
        ),
        timeout=10,
    )  # fmt: skip
    relayed = turn.get_extra_info("sockname")
    turn.close()
    return relayed


async def test_turnserver_conf_is_accepted_and_grants_the_nodes_credentials(tmp_path):
    binary = tool("turnserver", "coturn")
    self_signed(tmp_path / "certs")
    # coturn binds both ports on UDP and TCP (the TLS one for DTLS too)
    port = free_udp_and_tcp_port()
    tls_port = free_udp_and_tcp_port(avoid=(port, port + 1))
    relay = free_udp_port() // 2 * 2
    command = [
        binary, "-c", str(DEPLOY / "turnserver.conf"),
        # what compose passes on the command line, and the test-local addresses, ports and files
        f"--static-auth-secret={SECRET}", "--realm=video.stadt.test",
        "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1",
        f"--listening-port={port}", f"--tls-listening-port={tls_port}",
        f"--min-port={min(relay, 65000)}", f"--max-port={min(relay, 65000) + 40}",
        f"--cert={tmp_path / 'certs' / 'fullchain.pem'}", f"--pkey={tmp_path / 'certs' / 'privkey.pem'}",
        f"--pidfile={tmp_path / 'turn.pid'}", "--log-file=stdout",
    ]  # fmt: skip
    log = tmp_path / "turn.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for_stun(port, process, log)
        username, password = turn_credentials(SECRET, "p-test", ttl=3600)
        relayed = await allocate(port, username, password)
        assert relayed[0] == "127.0.0.1"
        relayed_tls = await allocate(tls_port, username, password, transport="tls")
        assert relayed_tls[0] == "127.0.0.1"
        with pytest.raises(Exception):  # noqa: B017 - aioice raises TransactionFailed (401) here
            await allocate(port, username, turn_credentials("another-secret", "p-test", ttl=3600)[1])
        expired = turn_credentials(SECRET, "p-old", ttl=-60)
        with pytest.raises(Exception):  # noqa: B017
            await allocate(port, *expired)
    finally:
        process.terminate()
        process.wait(timeout=10)
    text = log.read_text(errors="replace")
    assert "Bad configuration format" not in text, text
    assert "CONFIG ERROR" not in text.upper(), text
    assert re.search(r"pkey file found|Certificate file found", text, re.IGNORECASE), text


# --- compose ------------------------------------------------------------------------------------------


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def test_compose_file_is_valid_against_the_compose_spec_schema():
    schema = json.loads((DEPLOY / "schema" / "compose-spec.json").read_text())
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(compose()), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)
    # and the validator does catch a mistake
    broken = compose()
    broken["services"]["redis"]["restart"] = ["always"]
    broken["services"]["nginx"]["volumes_from_typo"] = []
    assert len(list(validator.iter_errors(broken))) >= 2


def test_compose_services_fit_together():
    spec = compose()
    services = spec["services"]
    assert {"node1", "node2", "redis", "coturn", "nginx"} <= services.keys()
    nginx_conf = (DEPLOY / "nginx.conf").read_text()
    ports = []
    for name in ("node1", "node2"):
        node = services[name]
        env = node["environment"]
        ports.append(env["SPRECHSTUNDE_PORT"])
        assert node["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
        assert "app-data:/var/lib/sprechstunde" in node["volumes"]  # one secret, keys and documents
        assert env["SPRECHSTUNDE_REDIS_URL"].startswith("redis://:${REDIS_PASSWORD")
        assert "${TURN_SECRET" in env["SPRECHSTUNDE_TURN_SECRET"]
        assert env["SPRECHSTUNDE_TRUSTED_PROXIES"] == "127.0.0.1/32"
        assert env["SPRECHSTUNDE_HOST"] == "127.0.0.1"
        assert node["depends_on"]["redis"]["condition"] == "service_healthy"
        assert f"127.0.0.1:{env['SPRECHSTUNDE_PORT']}/readyz" in " ".join(node["healthcheck"]["test"])
    assert sorted(ports) == ["8081", "8082"]
    for port in ports:
        assert nginx_conf.count(f"server 127.0.0.1:{port}") == 3  # its own upstream, rooms, the rest
    for name in ("node1", "node2"):
        node_id = services[name]["environment"]["SPRECHSTUNDE_NODE_ID"]
        assert re.search(rf"^\s+{node_id}\s+sprechstunde_{name};", nginx_conf, re.MULTILINE), node_id
    redis = services["redis"]["command"]
    assert redis[redis.index("--appendonly") + 1] == "yes"
    assert "--requirepass" in redis and redis[redis.index("--bind") + 1] == "127.0.0.1"
    coturn = services["coturn"]
    assert "--static-auth-secret=${TURN_SECRET}" in coturn["command"]
    assert "./turnserver.conf:/etc/coturn/turnserver.conf:ro" in coturn["volumes"]
    assert "./nginx.conf:/etc/nginx/nginx.conf:ro" in services["nginx"]["volumes"]
    example = (DEPLOY / ".env.example").read_text()
    used = set(re.findall(r"\$\{([A-Z_]+)", (DEPLOY / "docker-compose.yml").read_text()))
    defined = set(re.findall(r"^([A-Z_]+)=", example, re.MULTILINE))
    assert used <= defined, f"variables used in docker-compose.yml but not in .env.example: {used - defined}"


# --- Dockerfile, systemd, environment ---------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def test_dockerfile_copies_what_pip_install_needs_and_runs_the_cli():
    instructions = dockerfile_instructions()
    assert instructions[0][0] == "FROM" and instructions[0][1].startswith("python:3.11")
    for word, rest in instructions:
        if word == "COPY":
            *sources, _target = [s for s in shlex.split(rest) if not s.startswith("--")]
            for source in sources:
                assert (ROOT / source).exists(), f"Dockerfile copies {source}, which does not exist"
    ignored = [
        line.strip().rstrip("/")
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = [p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]]
    for needed in ["pyproject.toml", "README.md", *packages]:
        assert needed not in ignored, f"Dockerfile.dockerignore drops {needed}, which pip install . needs"
    users = [rest for word, rest in instructions if word == "USER"]
    assert users and users[-1] not in ("root", "0")
    entry = json.loads(next(rest for word, rest in instructions if word == "ENTRYPOINT"))
    command = json.loads(next(rest for word, rest in instructions if word == "CMD"))
    assert entry == ["sprechstunde"] and "sprechstunde" in project["project"]["scripts"]
    build_parser().parse_args(command)  # a valid command line of the CLI
    health = next(rest for word, rest in instructions if word == "HEALTHCHECK")
    assert "/readyz" in health


def test_systemd_units_verify(tmp_path):
    analyze = tool("systemd-analyze", "systemd")
    executable = Path(sys.prefix) / "bin" / "sprechstunde"
    assert executable.exists(), "pip install -e . provides the sprechstunde command"
    for name in ("sprechstunde.service", "sprechstunde@.service"):
        text = (DEPLOY / name).read_text()
        assert "ExecStart=/opt/sprechstunde/venv/bin/sprechstunde serve" in text
        (tmp_path / name).write_text(text.replace("/opt/sprechstunde/venv/bin/sprechstunde", str(executable)))
    os.symlink(tmp_path / "sprechstunde@.service", tmp_path / "sprechstunde@8081.service")
    result = subprocess.run(
        [analyze, "verify", "--man=no", str(tmp_path / "sprechstunde.service"),
         str(tmp_path / "sprechstunde@8081.service")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    problems = [line for line in result.stderr.splitlines() if "sprechstunde" in line]
    assert result.returncode == 0 and not problems, result.stderr
    assert "Environment=SPRECHSTUNDE_PORT=%i" in (DEPLOY / "sprechstunde@.service").read_text()


def known_variables() -> set[str]:
    """Every SPRECHSTUNDE_* variable the command line reads: those of the declared settings."""
    return {setting.variable for setting in settings()}


def test_every_variable_in_the_deploy_files_is_an_option():
    known = known_variables()
    assert {"SPRECHSTUNDE_REDIS_URL", "SPRECHSTUNDE_TURN_SECRET", "SPRECHSTUNDE_LOG_FORMAT"} <= known
    for name in ("docker-compose.yml", "Dockerfile", "sprechstunde.env.example", "sprechstunde.service",
                 "sprechstunde@.service"):  # fmt: skip
        used = set(re.findall(r"SPRECHSTUNDE_[A-Z_]+", (DEPLOY / name).read_text()))
        assert used <= known, f"{name} sets {used - known}, which no option reads"
