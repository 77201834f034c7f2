"""`sprechstunde availability show|set` and the demo advisor's default availability."""

from __future__ import annotations

import asyncio
import json

from sprechstunde.scheduling.availability import AvailabilityBook
from sprechstunde.store import open_store
from sprechstunde.web.core.cli import DEMO_USER, _ensure_demo, main
from sprechstunde.web.core.config import DATABASE_FILE, Config


def test_set_and_show_availability(tmp_path, capsys, monkeypatch):
    data = str(tmp_path)
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("richtig-langes-passwort\n"))
    assert main(["user", "add", "anna", "--office", "vhs", "--data-dir", data, "--password-stdin"]) == 0
    capsys.readouterr()
    args = ["availability", "set", "anna", "--data-dir", data, "--day", "mon=08:00-12:00,13:00-16:00"]
    assert main([*args, "--absence", "2027-01-01..2027-01-03"]) == 0
    saved = json.loads(capsys.readouterr().out)
    assert saved["weekly"] == {"mon": ["08:00-12:00", "13:00-16:00"]}
    assert saved["absences"] == [{"from": "2027-01-01", "to": "2027-01-03", "reason": ""}]
    assert main(["availability", "set", "anna", "--data-dir", data, "--day", "mon=9-17"]) == 2
    assert "weekly.mon" in capsys.readouterr().out
    assert main(["availability", "show", "anna", "--data-dir", data]) == 0
    assert json.loads(capsys.readouterr().out) == saved  # the bad call changed nothing
    assert main(["availability", "show", "nobody", "--data-dir", data]) == 1


def test_demo_advisor_is_bookable_during_the_demo_office_hours(tmp_path):
    config = Config(data_dir=tmp_path)

    async def run():
        await _ensure_demo(config)
        store = open_store(tmp_path / DATABASE_FILE)
        try:
            return await AvailabilityBook(store).get(DEMO_USER)
        finally:
            await store.close()

    pattern = asyncio.run(run())
    assert pattern.as_json()["weekly"]["mon"] == ["08:00-17:00"]
    assert pattern.as_json()["weekly"]["fri"] == ["08:00-13:00"] and "sat" not in pattern.as_json()["weekly"]
