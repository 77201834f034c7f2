from __future__ import annotations

import pytest

from sprechstunde.rooms.service import RoomError, parse_duration
from sprechstunde.rooms.tokens import TokenError, TokenSigner

SECRET = b"k" * 32


def test_round_trip_and_binding():
    signer = TokenSigner(SECRET, clock=lambda: 100.0)
    grant = signer.verify_join(signer.join_token("room1", "citizen", 200))
    assert (grant.room_id, grant.role, grant.expires_at) == ("room1", "citizen", 200)


def test_tampered_token_is_invalid():
    signer = TokenSigner(SECRET, clock=lambda: 100.0)
    token = signer.join_token("room1", "citizen", 200)
    body, sig = token.split(".")
    # Turning a citizen link into an advisor link by editing the claims breaks the signature.
    forged_body = body.replace(body[:4], "eyJy")
    for bad in (f"{forged_body}x.{sig}", f"{body}.{sig[:-2]}AA", "garbage", "", "a.b.c", "é.ü"):
        with pytest.raises(TokenError) as info:
            signer.verify_join(bad)
        assert info.value.reason == "invalid"


def test_other_secret_or_purpose_is_invalid():
    token = TokenSigner(SECRET).join_token("room1", "advisor", 4_000_000_000)
    with pytest.raises(TokenError):
        TokenSigner(b"o" * 32).verify_join(token)
    with pytest.raises(TokenError):
        TokenSigner(SECRET).verify("session", token)


def test_expired_token():
    token = TokenSigner(SECRET, clock=lambda: 100.0).join_token("room1", "guest", 150)
    with pytest.raises(TokenError) as info:
        TokenSigner(SECRET, clock=lambda: 151.0).verify_join(token)
    assert info.value.reason == "expired"


def test_short_secret_refused():
    with pytest.raises(ValueError):
        TokenSigner(b"short")


@pytest.mark.parametrize(("text", "seconds"), [("90m", 5400), ("2h", 7200), ("1d", 86400), ("600", 600)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "2 weeks", "-5m", "10s", "8d"])
def test_bad_durations(text):
    with pytest.raises(RoomError):
        parse_duration(text)
