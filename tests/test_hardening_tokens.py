"""Issue 15, finding 11: non-canonical variants of a signed token are refused.

base64 decoding used to ignore trailing padding, characters outside the alphabet and the unused low bits
of the last character, so `token=`, `token!!`, a `+` for a `-` or a sibling last character opened the same
booking, waiting place, call or download as the genuine link. Every token kind (join, waiting, booking
manage and join, download, booking form nonce) goes through `TokenSigner.verify`; each is tried here through
the route that takes it.
"""

from __future__ import annotations

import string
from datetime import timedelta

import pytest

from sprechstunde.rooms.tokens import TokenError, TokenSigner
from sprechstunde.web.booking.pages import FORM_PURPOSE
from sprechstunde.web.core.services import SERVICES
from tests import test_booking_api, test_waiting_api
from tests.conftest import token_of
from tests.test_booking_api import advisor, request
from tests.test_documents import upload
from tests.test_waiting_api import enqueue, receive, token_from, waiting_socket

SECRET = b"k" * 32
# 403 from the token check; 404 when a variant's '/' (standard alphabet) makes it another path
REFUSED = (403, 404)
URLSAFE = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"


def _sibling(char: str, unused_bits: int) -> str:
    """Another base64 character that decodes to the same bytes when it is the last one of a text whose
    final `unused_bits` bits are ignored by a lenient decoder."""
    index = URLSAFE.index(char)
    return URLSAFE[index ^ 1] if unused_bits else char


def variants(token: str) -> list[str]:
    """Texts a lenient base64 decoder reads as the same token."""
    body, sig = token.split(".")
    out = [
        token + "=",
        token + "==",
        token + "!!",
        f"{body}.{sig[:10]}!{sig[10:]}",
        f"{body}.{sig[:-1]}{_sibling(sig[-1], (len(sig) * 6) % 8)}",  # 43 chars carry 2 spare bits
        f"{body}=.{sig}",
        f"{body}.{sig}%3D",
    ]
    if "-" in sig or "_" in sig:
        out.append(f"{body}.{sig.replace('-', '+').replace('_', '/')}")
    return out


def test_canonical_token_verifies_and_every_variant_is_refused():
    signer = TokenSigner(SECRET, clock=lambda: 100.0)
    tried_alphabet = False
    for n in range(40):  # until a signature holds '-' or '_' (the standard-alphabet variant)
        token = signer.sign("wait", {"e": f"entry{n}", "exp": 200})
        assert signer.verify("wait", token)["e"] == f"entry{n}"
        for bad in variants(token):
            assert bad != token
            with pytest.raises(TokenError) as info:
                signer.verify("wait", bad)
            assert info.value.reason == "invalid", bad
        tried_alphabet = tried_alphabet or "-" in token or "_" in token
    assert tried_alphabet


def test_join_token_variants_are_refused():
    signer = TokenSigner(SECRET, clock=lambda: 100.0)
    token = signer.join_token("room1", "citizen", 200)
    assert signer.verify_join(token).room_id == "room1"
    for bad in variants(token):
        with pytest.raises(TokenError):
            signer.verify_join(bad)


async def test_join_link_variants_are_refused_on_the_page_and_the_socket(client, room_links):
    token = token_of(room_links["citizen_url"])
    assert (await client.get(f"/join/{token}")).status == 200
    for bad in variants(token):
        page = await client.get(f"/join/{bad}")
        assert page.status in REFUSED, bad
    ws = await client.ws_connect("/ws")
    for n, bad in enumerate(variants(token)):
        await ws.send_json({"type": "hello", "id": n, "v": 1, "token": bad, "name": "X"})
        reply = await ws.receive_json(timeout=5)
        assert reply["type"] == "error" and reply["code"] == "invalid_token", (bad, reply)
        if ws.closed:
            ws = await client.ws_connect("/ws")
    await ws.close()


async def test_waiting_link_variants_are_refused(client):
    client.app[SERVICES].waiting.clock.set(test_waiting_api.OPEN)
    entry = await enqueue(client)
    token = token_from(entry["waiting_url"])
    assert (await client.get(f"/wait/{token}")).status == 200
    for bad in variants(token):
        page = await client.get(f"/wait/{bad}")
        assert page.status in REFUSED, bad
        ws = await waiting_socket(client, bad)
        assert (await receive(ws))["code"] == "invalid_token", bad
        await ws.close()


async def test_booking_manage_and_join_link_variants_are_refused(client):
    services = client.app[SERVICES]
    services.waiting.clock.set(test_booking_api.at("12:00", test_booking_api.TUESDAY) - timedelta(days=1))
    await advisor(services)
    booked = await (await client.post("/api/bookings", json=request())).json()
    manage = booked["manage_token"]
    join = booked["join_url"].rsplit("/", 1)[1]
    assert (await client.get(f"/api/bookings/{manage}")).status == 200
    for bad in variants(manage):
        for method, path in [("GET", f"/api/bookings/{bad}"), ("GET", f"/api/bookings/{bad}/ics")]:
            response = await client.request(method, path)
            assert response.status in REFUSED, (path, response.status)
        cancel = await client.post(f"/api/bookings/{bad}/cancel")
        assert cancel.status in REFUSED
        page = await client.get(f"/termin/verwalten/{bad}")
        assert page.status in REFUSED, bad
    for bad in variants(join):
        response = await client.get(f"/api/bookings/join/{bad}")
        assert response.status in REFUSED, bad
        if response.status == 403:
            assert (await response.json())["error"]["code"] == "invalid_token"
    assert (await services.scheduling.get(booked["booking_id"])).status == "booked"


async def test_download_link_variants_are_refused(client, room_links):
    shared = await upload(client, room_links, b"%PDF-1.4\n%%EOF\n")
    assert shared.status == 201, await shared.text()
    document_id = (await shared.json())["id"]
    citizen = token_of(room_links["citizen_url"])
    minted = await client.post(
        f"/api/rooms/{room_links['room_id']}/documents/{document_id}/download",
        headers={"X-Join-Token": citizen},
    )
    download = (await minted.json())["url"]
    token = download.rsplit("/", 1)[1]
    for bad in variants(token):
        response = await client.get(f"/api/download/{bad}")
        assert response.status in REFUSED, bad
    assert (await client.get(download)).status == 200


def test_form_nonce_variants_are_refused():
    signer = TokenSigner(SECRET, clock=lambda: 100.0)
    nonce = signer.sign(FORM_PURPOSE, {"n": "abc", "exp": 200})
    for bad in variants(nonce):
        with pytest.raises(TokenError):
            signer.verify(FORM_PURPOSE, bad)
