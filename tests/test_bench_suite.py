"""benchmarks/suite.py: the plan covers every benchmark of shared/BENCHMARKS.md, ratios pair runs
of the same round, and the quick suite's tiny smoke run writes a result file of the documented schema.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import suite  # noqa: E402


def test_tiny_quick_suite_plans_every_benchmark_with_missing_peers_reported(tmp_path):
    plan = suite.plan("quick", tiny=True, peers=True, peers_dir=tmp_path)  # no peer environments there
    assert {m.benchmark for m in plan} == {"B1", "B2", "B3", "B4", "B5"}
    assert [m.agents for m in plan if m.benchmark == "B4"] == [1, 2]
    for m in plan:
        assert Path(m.ours[1]).exists(), m.ours
        if m.benchmark in ("B1", "B2", "B3"):
            assert m.peers == {"rejax 0.1.3": None, "stable-baselines3": None}


def test_full_suite_plans_the_published_configs(tmp_path):
    plan = suite.plan("full", peers=False, peers_dir=tmp_path)
    assert [m.agents for m in plan if m.benchmark == "B4"] == [1, 4, 16, 64, 256, 1024, 4096]
    assert {(m.benchmark, m.steps) for m in plan if m.benchmark in ("B1", "B2", "B3")} == {
        ("B1", 500_000),
        ("B2", 20_000),
        ("B3", 50_000),
    }
    assert {m.label for m in plan if m.benchmark == "B5"} >= {"brax/ant x 256", "CartPole-v1 x 4096"}


def test_eight_seed_sweeps_face_sb3_alone_and_only_filters(tmp_path):
    (tmp_path / "sb3" / "bin").mkdir(parents=True)
    (tmp_path / "sb3" / "bin" / "python").touch()  # an sb3 environment, no rejax
    plan = suite.plan("quick", peers=True, peers_dir=tmp_path, only=("S8",))
    assert [(m.benchmark, m.agents) for m in plan] == [("S8", 8), ("S8", 8)]
    for m in plan:
        assert list(m.peers) == ["stable-baselines3"] and m.per_agent_peers == ("stable-baselines3",)
        assert m.peers["stable-baselines3"][1].endswith("sb3_peer.py")


def test_unknown_suite_benchmark_or_steps_is_named():
    with pytest.raises(ValueError, match="unknown suite 'fast'"):
        suite.plan("fast")
    with pytest.raises(ValueError, match=r"unknown benchmark.*'B9'"):
        suite.plan("quick", only=("B9",))
    with pytest.raises(ValueError, match="B1, B2 or B3 with a positive count"):
        suite.plan("quick", steps={"B4": 10})


def _result(sps: float, compile_s: float) -> dict:
    """One run's JSON line as benchmarks/train.py prints it (plus the suite's process_wall_s)."""
    return dict(
        sps=sps,
        compile_s=compile_s,
        run_s=1.0,
        final_return_mean=1.0,
        final_return_min=0.5,
        peak_rss_mb=10.0,
        device_peak_mb=None,
        device="cpu",
        steps=100,
        process_wall_s=3.0,
    )


def test_ratios_pair_runs_of_the_same_round(monkeypatch):
    # Per-round sps ratios 100/50, 300/150, 200/400 = 2, 2, 0.5: median 2. The ratio of the medians
    # would be 200/150 = 1.33, so pairing rounds is what this checks.
    results = {
        "ours": iter([_result(100, 2.0), _result(300, 2.0), _result(200, 2.0)]),
        "peer": iter([_result(50, 4.0), _result(150, 4.0), _result(400, 1.0)]),
    }
    monkeypatch.setattr(suite, "measure", lambda cmd: next(results[cmd[0]]))
    m = suite.Measurement("B1", "4 seeds", 4, 100, ["ours"], {"peer": ["peer"], "absent": None}, ("peer",))
    rows = suite.run([m], repeats=3, log=lambda s: None)
    by_lib = {r["lib"]: r for r in rows}
    assert by_lib["purejaxlib"]["sps"] == 200 and by_lib["peer"]["sps"] == 150
    assert by_lib["peer"]["ours_vs_this_sps"] == pytest.approx(2.0)
    assert by_lib["peer"]["ours_vs_this_sps_per_agent"] == pytest.approx(0.5)  # the peer ran 1 agent, we ran 4
    assert by_lib["peer"]["ours_vs_this_compile"] == pytest.approx(0.5)  # 2/4, 2/4, 2/1
    assert by_lib["peer"]["agents"] == 1 and by_lib["purejaxlib"]["agents"] == 4
    assert by_lib["absent"]["missing"].startswith("not installed")
    assert [r["sps"] for r in by_lib["peer"]["runs"]] == [50, 150, 400]
    suite.check_schema({"schema": suite.SCHEMA, "meta": dict.fromkeys(suite.META_KEYS, "x"), "rows": rows})


@pytest.mark.slow
def test_tiny_quick_suite_writes_the_documented_schema(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "PEERS_DIR": str(tmp_path / "no-peers")}
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "run.py"),
            "--suite",
            "quick",
            "--tiny",
            "--peers",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=280,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "suite_quick_tiny.json").read_text())
    suite.check_schema(report)
    assert report["meta"]["suite"] == "quick" and report["meta"]["tiny"] is True
    measured = [r for r in report["rows"] if "missing" not in r]
    assert {r["benchmark"] for r in measured} == {"B1", "B2", "B3", "B4", "B5"}
    assert {r["lib"] for r in report["rows"] if "missing" in r} == {"rejax 0.1.3", "stable-baselines3"}
    for r in measured:
        assert r["sps"] > 0 and r["compile_s"] > 0 and r["peak_rss_mb"] > 100, r
        if r["benchmark"] in ("B1", "B2", "B3"):
            assert r["final_return_mean"] is not None, r
    table = (out / "suite_quick_tiny.md").read_text()
    assert table.count("\n| B") == len(report["rows"])
    for name in ("suite_quick_tiny_b4.png", "suite_quick_tiny_sps.png"):
        assert (out / name).read_bytes().startswith(b"\x89PNG")


def test_schema_check_names_the_missing_field():
    report = {
        "schema": suite.SCHEMA,
        "meta": dict.fromkeys(suite.META_KEYS, "x"),
        "rows": [{k: 1 for k in suite.ROW_KEYS if k != "compile_s"}],
    }
    with pytest.raises(ValueError, match=r"row 0 .*compile_s"):
        suite.check_schema(report)


def test_publish_replaces_only_its_block_and_refuses_a_missing_one():
    import publish

    b5 = "<!-- bench:b5 -->\nkeep\n<!-- /bench:b5 -->\n"
    readme = "intro\n<!-- bench:suite_full -->\nold\n<!-- /bench:suite_full -->\n" + b5
    out = publish.publish(readme, "suite_full", "| new |\n")
    assert out == "intro\n<!-- bench:suite_full -->\n| new |\n<!-- /bench:suite_full -->\n" + b5
    with pytest.raises(ValueError, match="bench:threshold"):
        publish.publish(readme, "threshold", "x")
