"""Documents and links over HTTP: round trip, access, refusals, integrity, live events, audit."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
import os
import time
import zipfile
from pathlib import Path

import aiohttp
import pytest

from sprechstunde.documents import KeyRing
from sprechstunde.documents.crypto import KEY_FILE, IntegrityError
from sprechstunde.web.core.app import create_app
from sprechstunde.web.core.config import Config
from sprechstunde.web.core.services import SERVICES
from tests.conftest import token_of

MB = 1024 * 1024
PDF = b"%PDF-1.7\n" + os.urandom(300_000) + b"\n%%EOF\n"


def auth(links: dict, role: str = "citizen") -> dict[str, str]:
    return {"X-Join-Token": token_of(links[f"{role}_url"])}


async def upload(client, links, data: bytes, name: str = "Antrag.pdf", role: str = "citizen"):
    room = links["room_id"]
    headers = auth(links, role) | {"X-File-Name": name, "Content-Type": "application/octet-stream"}
    return await client.post(f"/api/rooms/{room}/documents", data=data, headers=headers)


async def fetch(client, links, document_id: str, role: str = "advisor") -> aiohttp.ClientResponse:
    room = links["room_id"]
    path = f"/api/rooms/{room}/documents/{document_id}/download"
    minted = await client.post(path, headers=auth(links, role))
    assert minted.status == 200, await minted.text()
    return await client.get((await minted.json())["url"])


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file())


def blob_of(services, document_id: str) -> Path:
    return services.documents.blobs / document_id[:2] / document_id


async def test_round_trip_is_byte_exact_and_served_as_attachment(client, services, room_links):
    response = await upload(client, room_links, PDF, "Antrag Müller.pdf")
    assert response.status == 201, await response.text()
    item = await response.json()
    assert item["type"] == "file" and item["name"] == "Antrag Müller.pdf" and item["size"] == len(PDF)
    assert item["mime"] == "application/pdf" and item["uploader_role"] == "citizen"

    path = f"/api/rooms/{room_links['room_id']}/documents"
    listing = await (await client.get(path, headers=auth(room_links))).json()
    assert [i["id"] for i in listing["items"]] == [item["id"]]
    assert listing["you"] == item["owner_tag"]
    assert listing["limits"]["used_bytes"] == len(PDF)

    download = await fetch(client, room_links, item["id"])
    assert download.status == 200
    body = await download.read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(PDF).digest()
    assert download.headers["Content-Disposition"].startswith("attachment;")
    assert "filename*=UTF-8''Antrag%20M%C3%BCller.pdf" in download.headers["Content-Disposition"]
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    assert download.headers["Content-Security-Policy"] == "sandbox"
    assert download.headers["Content-Type"] == "application/pdf"

    # At rest the blob is ciphertext: neither the content nor the name is readable anywhere on disk.
    blob = blob_of(services, item["id"]).read_bytes()
    assert PDF[:4096] not in blob and len(blob) > len(PDF)
    database = (services.config.data_dir / "sprechstunde.sqlite3").read_bytes()
    assert b"M\xc3\xbcller" not in database and b"Antrag" not in database

    audit = await services.documents.audit_log()
    assert [e["action"] for e in audit] == ["upload", "download"]
    assert {e["document_id"] for e in audit} == {item["id"]}
    assert audit[0]["actor"]["role"] == "citizen" and audit[1]["actor"]["role"] == "advisor"
    assert "Antrag" not in json.dumps(audit)


async def test_multipart_upload(client, room_links):
    form = aiohttp.FormData()
    form.add_field("file", b"Hallo, hier ist mein Text.\n", filename="notiz.txt", content_type="text/plain")
    response = await client.post(
        f"/api/rooms/{room_links['room_id']}/documents", data=form, headers=auth(room_links)
    )
    assert response.status == 201, await response.text()
    item = await response.json()
    assert item["name"] == "notiz.txt" and item["mime"].startswith("text/plain")
    body = await (await fetch(client, room_links, item["id"])).read()
    assert body == b"Hallo, hier ist mein Text.\n"


async def test_other_rooms_token_is_refused(client, services, room_links):
    other = services.rooms.links(await services.rooms.create("vhs", 3600), "http://test").as_json()
    room = room_links["room_id"]
    for method, path in (
        ("GET", f"/api/rooms/{room}/documents"),
        ("POST", f"/api/rooms/{room}/documents"),
        ("POST", f"/api/rooms/{room}/links"),
    ):
        response = await client.request(method, path, headers=auth(other), data=b"x")
        assert response.status == 403, (method, path)
        assert (await response.json())["error"]["code"] == "wrong_room"
    anonymous = await client.get(f"/api/rooms/{room}/documents")
    assert anonymous.status == 401
    forged = await client.get(f"/api/rooms/{room}/documents", headers={"X-Join-Token": "a.b"})
    assert forged.status == 403


async def test_staff_of_the_office_only(client, services, room_links):
    room = room_links["room_id"]
    await services.staff.add("berater", "geheim-genug-1", "advisor", ["vhs"])
    await services.staff.add("fremd", "geheim-genug-2", "advisor", ["buergeramt"])
    jar_login = await client.post("/api/login", json={"username": "fremd", "password": "geheim-genug-2"})
    assert jar_login.status == 200
    refused = await client.get(f"/api/rooms/{room}/documents")
    assert refused.status == 403 and (await refused.json())["error"]["code"] == "forbidden_office"

    login = await client.post("/api/login", json={"username": "berater", "password": "geheim-genug-1"})
    csrf = (await login.json())["csrf"]
    # Before the citizen arrives, the advisor attaches a document from the staff session.
    headers = {"X-File-Name": "Merkblatt.pdf", "Content-Type": "application/octet-stream"}
    no_csrf = await client.post(f"/api/rooms/{room}/documents", data=PDF, headers=headers)
    assert no_csrf.status == 403 and (await no_csrf.json())["error"]["code"] == "csrf"
    response = await client.post(
        f"/api/rooms/{room}/documents", data=PDF, headers=headers | {"X-CSRF-Token": csrf}
    )
    assert response.status == 201
    item = await response.json()
    assert item["uploader_role"] == "advisor"
    # The citizen sees it when they open the list.
    listing = await (await client.get(f"/api/rooms/{room}/documents", headers=auth(room_links))).json()
    assert [i["id"] for i in listing["items"]] == [item["id"]]
    assert (await services.documents.audit_log())[0]["actor"] == {
        "kind": "staff",
        "id": "berater",
        "role": "advisor",
    }


@pytest.fixture
def small_config(tmp_path) -> Config:
    return Config(
        data_dir=tmp_path / "data", media_addresses=["127.0.0.1"], demo=False, max_file_mb=1, max_room_mb=2.5
    )


@pytest.fixture
async def small(aiohttp_client, small_config):
    client = await aiohttp_client(create_app(small_config))
    services = client.app[SERVICES]
    room = await services.rooms.create("vhs", 3600)
    return client, services, services.rooms.links(room, "http://test").as_json()


async def test_oversize_is_refused_and_leaves_nothing_on_disk(small):
    client, services, links = small
    big = b"%PDF-1.4\n" + b"0" * (MB + 10)
    response = await upload(client, links, big)  # with Content-Length: refused before reading
    assert response.status == 413
    assert (await response.json())["error"]["code"] == "file_too_large"

    async def stream():
        for _ in range(20):
            yield b"%PDF-" + b"1" * (128 * 1024)

    headers = auth(links) | {"X-File-Name": "x.pdf", "Content-Type": "application/octet-stream"}
    chunked = await client.post(f"/api/rooms/{links['room_id']}/documents", data=stream(), headers=headers)
    assert chunked.status == 413
    assert files_under(services.documents.root) == []
    assert await services.documents.list(links["room_id"]) == []


async def test_room_quota(small):
    client, services, links = small
    part = b"%PDF-1.4\n" + b"1" * (MB - 100)
    for _ in range(2):
        assert (await upload(client, links, part)).status == 201
    response = await upload(client, links, part)
    assert response.status == 413
    assert (await response.json())["error"]["code"] == "room_quota_exceeded"
    assert len(files_under(services.documents.blobs)) == 2


@pytest.mark.parametrize(
    ("content", "name"),
    [
        (b"MZ\x90\x00\x03\x00\x00\x00\x04\x00" + os.urandom(5000), "Antrag.pdf"),  # an .exe renamed .pdf
        (b"\x7fELF\x02\x01\x01" + os.urandom(100), "bild.jpg"),
        (b"<script>\x00alert(1)</script>", "x.txt"),
        (b"caf\xe9 latin-1 is not UTF-8", "x.txt"),
        (b"", "leer.pdf"),
    ],
)
async def test_disguised_or_unknown_types_are_refused(client, services, room_links, content, name):
    response = await upload(client, room_links, content, name)
    assert response.status == 415, await response.text()
    error = (await response.json())["error"]
    assert error["code"] == "unsupported_type" and error["message"]
    assert files_under(services.documents.root) == []


def _zip(entries: dict[str, bytes], stored_first: bool = False) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            method = zipfile.ZIP_STORED if stored_first and name == "mimetype" else zipfile.ZIP_DEFLATED
            archive.writestr(name, data, compress_type=method)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("content", "name", "mime"),
    [
        (b"\x89PNG\r\n\x1a\n" + os.urandom(100), "scan", "image/png"),
        (b"\xff\xd8\xff\xe0" + os.urandom(100), "IMG_0001.JPG", "image/jpeg"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + os.urandom(64), "IMG_0002.HEIC", "image/heic"),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 " + os.urandom(64), "foto.webp", "image/webp"),
        (
            _zip({"[Content_Types].xml": b"<Types/>", "word/document.xml": b"<w:document/>"}),
            "brief.docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ),
        (
            _zip({"[Content_Types].xml": b"<Types/>", "xl/workbook.xml": b"<workbook/>"}),
            "tabelle.xlsx",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        ),
        (
            _zip(
                {"mimetype": b"application/vnd.oasis.opendocument.text", "content.xml": b"<office/>"},
                stored_first=True,
            ),
            "brief.odt",
            "application/vnd.oasis.opendocument.text",
        ),
    ],
)
async def test_allowed_types_by_content(client, room_links, content, name, mime):
    response = await upload(client, room_links, content, name)
    assert response.status == 201, await response.text()
    assert (await response.json())["mime"] == mime


async def test_plain_zip_and_macro_free_lookalikes_are_refused(client, room_links):
    for content in (
        _zip({"payload.exe": b"MZ"}),
        _zip({"[Content_Types].xml": b"<Types/>", "ppt/slide1.xml": b"<p/>"}),  # PowerPoint: not allowed
    ):
        response = await upload(client, room_links, content, "brief.docx")
        assert response.status == 415


async def test_filenames_are_sanitised_for_display(client, room_links):
    cases = {
        "../../etc/passwd": "passwd.txt",
        "C:\\Users\\x\\Befund\u202egnp.txt": "Befund gnp.txt",
        "   .hidden  ": "hidden.txt",
        "": "Dokument.txt",
        "rechnung.pdf": "rechnung.pdf.txt",  # the extension follows the content, not the name
    }
    for given, shown in cases.items():
        response = await upload(client, room_links, b"text\n", given)
        assert (await response.json())["name"] == shown, given


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        " JavaScript:alert(document.cookie)",
        "data:text/html,<script>alert(1)</script>",
        "file:///etc/passwd",
        "https://stadt.koeln@evil.example/",
        "https:///nohost",
        "https://exa mple.de/",
        "",
        42,
    ],
)
async def test_bad_links_are_refused(client, room_links, url):
    response = await client.post(
        f"/api/rooms/{room_links['room_id']}/links", json={"url": url}, headers=auth(room_links)
    )
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "invalid_url"


async def test_links_are_shared_as_data(client, services, room_links):
    room = room_links["room_id"]
    response = await client.post(
        f"/api/rooms/{room}/links",
        json={"url": "https://www.stadt-koeln.de/service/produkt/wohngeld?x=<b>", "title": "Wohngeld\n<b>"},
        headers=auth(room_links, "advisor"),
    )
    assert response.status == 201
    item = await response.json()
    assert item["type"] == "link" and item["host"] == "www.stadt-koeln.de"
    assert item["title"] == "Wohngeld <b>"  # control characters folded; markup stays text (the client)
    idn = await client.post(
        f"/api/rooms/{room}/links", json={"url": "https://bürgeramt.de/"}, headers=auth(room_links)
    )
    assert (await idn.json())["host"] == "xn--brgeramt-65a.de"  # lookalike domains become visible
    listing = await (await client.get(f"/api/rooms/{room}/documents", headers=auth(room_links))).json()
    assert [i["type"] for i in listing["items"]] == ["link", "link"]
    no_download = await client.post(
        f"/api/rooms/{room}/documents/{item['id']}/download", headers=auth(room_links)
    )
    assert no_download.status == 400


async def test_expired_or_forged_download_url(client, services, room_links):
    item = await (await upload(client, room_links, PDF)).json()
    claims = {"d": item["id"], "r": room_links["room_id"], "k": "participant", "i": "t-x", "ro": "citizen"}
    expired = services.signer.sign("download", claims | {"exp": int(time.time()) - 1})
    response = await client.get(f"/api/download/{expired}")
    assert response.status == 410
    assert (await response.json())["error"]["code"] == "expired"
    # A join token is not a download token (the purpose is part of the signature).
    join = services.signer.sign("join", claims | {"exp": int(time.time()) + 60})
    assert (await client.get(f"/api/download/{join}")).status == 403


async def test_delete_own_uploads_only(client, services, room_links):
    room = room_links["room_id"]
    item = await (await upload(client, room_links, PDF)).json()
    minted = await client.post(f"/api/rooms/{room}/documents/{item['id']}/download", headers=auth(room_links))
    url = (await minted.json())["url"]
    path = f"/api/rooms/{room}/documents/{item['id']}"
    theirs = await client.delete(path, headers=auth(room_links, "advisor"))
    assert theirs.status == 403 and (await theirs.json())["error"]["code"] == "not_owner"
    mine = await client.delete(f"/api/rooms/{room}/documents/{item['id']}", headers=auth(room_links))
    assert mine.status == 204
    assert not blob_of(services, item["id"]).exists()
    assert (await client.get(url)).status == 410  # a URL minted before the deletion no longer works
    listing = await (await client.get(f"/api/rooms/{room}/documents", headers=auth(room_links))).json()
    assert listing["items"] == []
    assert [e["action"] for e in await services.documents.audit_log()] == ["upload", "delete"]


@pytest.mark.parametrize("damage", ["flip", "truncate_chunk", "truncate_bytes", "append", "swap"])
async def test_tampered_or_truncated_blob_is_detected(client, services, room_links, caplog, damage):
    content = b"%PDF-1.5\n" + os.urandom(300_000)
    item = await (await upload(client, room_links, content)).json()
    path = blob_of(services, item["id"])
    data = bytearray(path.read_bytes())
    sealed = 64 * 1024 + 16
    if damage == "flip":
        data[100_000] ^= 0x01
    elif damage == "truncate_chunk":
        del data[17 + 3 * sealed :]  # exactly at a chunk boundary: only the final flag can tell
    elif damage == "truncate_bytes":
        del data[-1000:]
    elif damage == "append":
        data += data[17 : 17 + sealed]
    elif damage == "swap":
        first, second = data[17 : 17 + sealed], data[17 + sealed : 17 + 2 * sealed]
        data[17 : 17 + 2 * sealed] = second + first
    path.write_bytes(bytes(data))
    caplog.set_level(logging.ERROR, logger="documents")
    response = await fetch(client, room_links, item["id"])
    assert response.status == 500
    error = (await response.json())["error"]
    assert error["code"] == "document_damaged" and "damaged" in error["message"]
    assert any(item["id"] in r.getMessage() and "integrity" in r.getMessage() for r in caplog.records)
    assert (await services.documents.audit_log())[-1]["action"] == "integrity_failure"


async def test_the_other_side_sees_the_document_at_once(client, services, room_links):
    ws = await client.ws_connect("/ws")
    await ws.send_json({"type": "hello", "id": 1, "v": 1, "token": token_of(room_links["advisor_url"])})

    async def next_of(kind: str) -> dict:
        while True:
            message = json.loads((await ws.receive(timeout=5)).data)
            if message["type"] == kind:
                return message

    await next_of("welcome")
    item = await (await upload(client, room_links, PDF, "Formular.pdf")).json()
    added = await next_of("document-added")
    assert added["document"] == item
    path = f"/api/rooms/{room_links['room_id']}/documents/{item['id']}"
    await client.delete(path, headers=auth(room_links))
    removed = await next_of("document-removed")
    assert removed == {"type": "document-removed", "document_id": item["id"], "reason": "deleted"}
    await ws.close()


async def test_master_key_file_is_private_and_never_logged(client, services, room_links, caplog):
    caplog.set_level(logging.DEBUG)
    await upload(client, room_links, PDF)
    path = services.config.data_dir / KEY_FILE
    assert (path.stat().st_mode & 0o777) == 0o600
    keys = json.loads(path.read_text())["keys"]
    text = caplog.text + repr(services.documents.keys) + repr(services.config)
    assert not any(key in text for key in keys.values())


async def test_configured_master_key_and_repr(tmp_path):
    key = "k1:" + __import__("base64").b64encode(b"\x01" * 32).decode()
    config = Config(data_dir=tmp_path, document_keys=key)
    assert "AQEB" not in repr(config)
    ring = KeyRing(tmp_path, key)
    assert ring.active_id == "k1" and not (tmp_path / KEY_FILE).exists()
    wrapped = ring.wrap("doc", b"\x02" * 32)
    assert ring.unwrap("doc", wrapped) == b"\x02" * 32
    with pytest.raises(IntegrityError):  # bound to the document id
        ring.unwrap("other", wrapped)
    await asyncio.sleep(0)
