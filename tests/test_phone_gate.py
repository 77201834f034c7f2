"""Who may call the SIP endpoint (sprechstunde/phone/sip.py CallGate): the trunk by address or by
digest credentials, nobody else (403), and not too often (503); the logs' masked number."""

from __future__ import annotations

import hashlib
import ipaddress
import re

from sprechstunde.phone.ivr import spell
from sprechstunde.phone.sip import CallGate, SipSettings, calling_number, mask_number


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def _invite_with(gate: CallGate, password: str) -> str:
    nonce = re.search(r'nonce="([^"]+)"', gate.challenge()).group(1)
    uri = "sip:beratung@127.0.0.1"
    ha1 = _md5(f"trunk:sprechstunde:{password}")
    ha2 = _md5(f"INVITE:{uri}")
    response = _md5(f"{ha1}:{nonce}:00000001:abc:auth:{ha2}")
    header = (
        f'Authorization: Digest username="trunk", realm="sprechstunde", nonce="{nonce}", uri="{uri}", '
        f'response="{response}", algorithm=MD5, qop=auth, nc=00000001, cnonce="abc"'
    )
    return f"INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.9\r\n{header}\r\n\r\n"


def test_the_trunk_is_let_in_by_address_and_everybody_else_refused():
    gate = CallGate(SipSettings("127.0.0.1", 5060, allow=(ipaddress.ip_network("10.1.0.0/16"),)))
    assert gate.admit("10.1.2.3", "INVITE sip:x SIP/2.0\r\n\r\n", 0) == (0, None)
    assert gate.admit("192.0.2.7", "INVITE sip:x SIP/2.0\r\n\r\n", 0) == (403, None)


def test_digest_credentials_are_challenged_and_checked():
    gate = CallGate(SipSettings("127.0.0.1", 5060, username="trunk", password="geheim"))
    status, header = gate.admit("192.0.2.7", "INVITE sip:x SIP/2.0\r\n\r\n", 0)
    assert status == 401 and header.startswith('WWW-Authenticate: Digest realm="sprechstunde"')
    assert gate.admit("192.0.2.7", _invite_with(gate, "geheim"), 0) == (0, None)
    assert gate.admit("192.0.2.7", _invite_with(gate, "falsch"), 0)[0] == 401
    forged = _invite_with(gate, "geheim").replace('nonce="', 'nonce="1', 1)
    assert gate.admit("192.0.2.7", forged, 0)[0] == 401


def test_calls_are_limited_per_address_and_in_total():
    now = [0.0]
    gate = CallGate(SipSettings("127.0.0.1", 5060, calls_per_minute=3, max_calls=5), clock=lambda: now[0])
    assert [gate.admit("192.0.2.1", "", 0)[0] for _ in range(4)] == [0, 0, 0, 503]
    assert gate.admit("192.0.2.2", "", 0)[0] == 0  # another address has its own count
    assert gate.admit("192.0.2.3", "", 5)[0] == 503  # every slot taken
    now[0] = 61.0
    assert gate.admit("192.0.2.1", "", 0)[0] == 0  # a minute later


def test_logs_see_a_masked_number_and_the_reference_is_spelt_out():
    assert calling_number('"Frau M." <sip:+492151123456@pbx.stadt.de>;tag=1') == "+492151123456"
    assert mask_number("+492151123456") == "…56"
    assert spell("SP-2026-000123") == "S P, 2 0 2 6, 0 0 0 1 2 3"
