"""The media benchmark's Janus reference (bench/janus.py): the configuration it writes, the ratio lines it
prints, the instruction when Janus is missing, and, where Janus is installed, one short consultation
through it (figures are not asserted beyond "media arrived")."""

from __future__ import annotations

import pytest

from bench import janus, media_relay


def _modules(tmp_path):
    modules = tmp_path / "lib"
    for kind, name in (("plugins", janus.PLUGIN), ("transports", janus.TRANSPORT)):
        (modules / kind).mkdir(parents=True)
        (modules / kind / name).write_bytes(b"")
    (modules / "plugins" / "libjanus_echotest.so").write_bytes(b"")  # never linked
    return modules


def test_config_loads_videoroom_and_websockets_only_on_the_given_addresses(tmp_path):
    modules = _modules(tmp_path)
    folder = janus.write_config(tmp_path / "conf", 18188, modules, "192.0.2.2")
    assert sorted(p.name for p in (folder / "plugins").iterdir()) == [janus.PLUGIN]
    assert sorted(p.name for p in (folder / "transports").iterdir()) == [janus.TRANSPORT]
    assert (folder / "plugins" / janus.PLUGIN).resolve() == (modules / "plugins" / janus.PLUGIN).resolve()
    core = (folder / "janus.jcfg").read_text()
    assert f'configs_folder = "{folder}"' in core
    assert f'plugins_folder = "{folder / "plugins"}"' in core
    assert 'ice_enforce_list = "192.0.2.2"' in core
    for absent in ("stun_server", "turn_server", "nat_1_1_mapping", "/etc/janus"):
        assert absent not in core
    ws = (folder / "janus.transport.websockets.jcfg").read_text()
    assert "ws_port = 18188" in ws and 'ws_ip = "127.0.0.1"' in ws
    assert "wss = false" in ws and "admin_ws = false" in ws
    assert (folder / "janus.plugin.videoroom.jcfg").read_text() == "general: {\n}\n"  # no static rooms


def test_jcfg_sections_and_values():
    text = janus._jcfg({"general": {"a": True, "b": 3, "c": 'x"y'}, "empty": {}})
    assert text == 'general: {\n\ta = true\n\tb = 3\n\tc = "x\\"y"\n}\nempty: {\n}\n'


def test_modules_found_only_with_both_files(tmp_path):
    assert janus.find_modules((tmp_path / "none", _modules(tmp_path))) == tmp_path / "lib"
    (tmp_path / "lib" / "transports" / janus.TRANSPORT).unlink()
    assert janus.find_modules((tmp_path / "lib",)) is None


def _run(mode, n, cores, saturated=False):
    return {"mode": mode, "n": n, "summary": {"cores_per_consultation": cores, "saturated": saturated}}


def test_reference_lines_give_sprechstunde_over_janus_per_n():
    runs = [
        _run("forward", 1, 0.05),
        _run("janus", 1, 0.025),
        _run("transcode", 1, 0.5),
        _run("forward", 16, 0.026),
        _run("janus", 16, 0.013, saturated=True),
        _run("forward", 24, 0.02),  # no Janus run of this N: no line
    ]
    lines = janus.reference_lines(runs)
    assert lines[0].startswith("reference (server CPU per consultation")
    assert lines[1:] == [
        "N=1: sprechstunde 0.0500 cores/consultation, janus 0.0250, ratio 2.00",
        "N=16: sprechstunde 0.0260 cores/consultation, janus 0.0130, ratio 2.00 (janus saturated)",
    ]
    assert janus.reference_lines([_run("forward", 1, 0.05)]) == []


def test_missing_janus_stops_with_the_install_instruction(monkeypatch, capsys):
    monkeypatch.setattr(janus, "find_janus", lambda: None)
    assert media_relay.main(["--modes", "forward", "--ns", "1"]) == 2
    assert "./run bench" in capsys.readouterr().err


def test_no_reference_wanted_parses():
    args = media_relay.build_parser().parse_args(["--reference", "none"])
    assert args.reference == "none"
    assert media_relay.build_parser().parse_args([]).reference == "janus"


@pytest.mark.skipif(
    janus.find_janus() is None or janus.find_modules() is None, reason="janus not installed (./run bench)"
)
def test_one_consultation_through_janus(tmp_path):
    clip = media_relay.build_clip()
    plan = media_relay.Plan(seconds=2.0, warmup=1.0, pair_gap=0.2, cpus=None)
    run = janus.run_janus_case(1, clip, plan, tmp_path)
    s = run["summary"]
    assert run["mode"] == "janus" and s["joined"] == 2 and not s["errors"], (s, run["client_failures"])
    assert s["video_fps_mean"] > 0 and s["audio_pps_mean"] > 0
    assert run["server_cores"] > 0
    line = janus.reference_lines([_run("forward", 1, 0.05), run])[1]
    assert line.startswith("N=1: sprechstunde 0.0500 cores/consultation, janus ")
