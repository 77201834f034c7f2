"""Staff accounts: roles, offices, languages, disabling and password changes."""

from __future__ import annotations

import asyncio

import pytest

from sprechstunde.rooms.staff import SESSION_KIND, STAFF_KIND, StaffDirectory, StaffError
from sprechstunde.store import SQLiteStore


@pytest.fixture
async def staff(tmp_path):
    store = SQLiteStore(tmp_path / "staff.sqlite3")
    yield StaffDirectory(store), store
    await store.close()


async def test_languages_default_to_german_and_old_records_still_load(staff):
    directory, store = staff
    member = await directory.add("anna", "ein-langes-passwort", "advisor", ["vhs"])
    assert member.languages == ["de"]
    # An account stored before languages existed.
    await store.put(
        STAFF_KIND, "alt", {"username": "alt", "role": "advisor", "offices": ["vhs"], "disabled": False}
    )
    assert (await directory.get("alt")).languages == ["de"]
    tr = await directory.add(
        "tuerkan", "ein-langes-passwort", "lead", ["vhs", "familienbuero"], ["tr", "de", "tr"]
    )
    assert tr.languages == ["tr", "de"] and tr.offices == ["familienbuero", "vhs"]
    assert [m.username for m in await directory.members()] == ["alt", "anna", "tuerkan"]


@pytest.mark.parametrize("languages", [[], ["Deutsch"], ["d"], [3]])
async def test_bad_languages(staff, languages):
    directory, store = staff
    with pytest.raises(StaffError) as err:
        await directory.add("anna", "ein-langes-passwort", "advisor", ["vhs"], languages)
    assert err.value.code == "invalid_language"
    assert await store.scan(STAFF_KIND) == []


async def test_disable_ends_sessions_and_login(staff):
    directory, _ = staff
    member = await directory.add("anna", "ein-langes-passwort", "advisor", ["vhs"])
    session = await directory.open_session(member)
    assert (await directory.set_disabled("anna")).disabled
    assert await directory.session_member(session) is None
    assert await directory.authenticate("anna", "ein-langes-passwort") is None
    await directory.set_disabled("anna", False)
    assert await directory.authenticate("anna", "ein-langes-passwort") is not None


async def test_password_change(staff):
    directory, _ = staff
    await directory.add("anna", "ein-langes-passwort", "advisor", ["vhs"])
    with pytest.raises(StaffError) as err:
        await directory.set_password("anna", "kurz")
    assert err.value.code == "weak_password"
    await directory.set_password("anna", "ein-neues-passwort")
    assert await directory.authenticate("anna", "ein-langes-passwort") is None
    assert await directory.authenticate("anna", "ein-neues-passwort") is not None
    with pytest.raises(StaffError) as err:
        await directory.set_password("niemand", "ein-neues-passwort")
    assert err.value.code == "unknown_user"


async def test_concurrent_disable_and_password_change_keep_both(staff):
    directory, _ = staff
    await directory.add("anna", "ein-langes-passwort", "advisor", ["vhs"])
    await asyncio.gather(directory.set_disabled("anna"), directory.set_password("anna", "ein-neues-passwort"))
    assert (await directory.get("anna")).disabled
    await directory.set_disabled("anna", False)
    assert await directory.authenticate("anna", "ein-neues-passwort") is not None


@pytest.fixture(params=["embedded", "redis"])
async def both_staff(request, tmp_path):
    """The staff directory on each store adapter (Redis: the real server, a per-test prefix)."""
    from sprechstunde.store import RedisStore
    from tests.test_store import REDIS_URL, redis_namespace

    if request.param == "embedded":
        store = SQLiteStore(tmp_path / "staff.sqlite3")
        yield StaffDirectory(store), store
        await store.close()
        return
    async with redis_namespace() as prefix:
        store = RedisStore(REDIS_URL, prefix=prefix)
        yield StaffDirectory(store), store
        await store.close()


async def test_password_change_ends_every_session(both_staff):
    """issue 15, finding 6: before, sessions opened with the old password stayed valid for up to 12 h."""
    directory, store = both_staff
    anna = await directory.add("anna", "ein-langes-passwort", "advisor", ["vhs"])
    bert = await directory.add("bert", "ein-langes-passwort", "advisor", ["vhs"])
    sessions = [await directory.open_session(anna) for _ in range(2)]
    other = await directory.open_session(bert)
    await directory.set_password("anna", "ein-neues-passwort")
    assert [await directory.session_member(s) for s in sessions] == [None, None]
    assert await directory.session_member(other) == bert  # other accounts keep theirs
    assert [r["username"] for _, r in await store.scan(SESSION_KIND)] == ["bert"]  # records gone too
    fresh = await directory.open_session(await directory.authenticate("anna", "ein-neues-passwort"))
    assert (await directory.session_member(fresh)).username == "anna"


async def test_disable_ends_sessions_for_good(both_staff):
    """issue 15, finding 6: unlocking an account does not bring its old sessions back."""
    directory, store = both_staff
    anna = await directory.add("anna", "ein-langes-passwort", "advisor", ["vhs"])
    session = await directory.open_session(anna)
    await directory.set_disabled("anna")
    await directory.set_disabled("anna", False)
    assert await directory.session_member(session) is None
    assert await store.scan(SESSION_KIND) == []


async def test_login_racing_a_password_change_gets_no_session(both_staff):
    """issue 15, finding 6: a sign-in checked against the old password cannot open a live session."""
    directory, _ = both_staff
    await directory.add("anna", "ein-langes-passwort", "advisor", ["vhs"])
    member = await directory.authenticate("anna", "ein-langes-passwort")
    await directory.set_password("anna", "ein-neues-passwort")
    assert await directory.session_member(await directory.open_session(member)) is None
