"""benchmarks/suite.py plans every benchmark of shared/BENCHMARKS.md and refuses unknown suites.

The suite's run itself (fresh processes, minutes of compiling) is not part of the test suite yet;
``python benchmarks/run.py --suite quick --tiny`` is its smoke run.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import suite  # noqa: E402


def test_tiny_quick_suite_plans_every_benchmark_with_missing_peers_reported(tmp_path):
    plan = suite.plan("quick", tiny=True, peers=True, peers_dir=tmp_path)  # no peer environments there
    assert {m.benchmark for m in plan} == {"B1", "B2", "B3", "B4", "B5"}
    assert [m.agents for m in plan if m.benchmark == "B4"] == [1, 2]
    for m in plan:
        assert Path(m.ours[1]).exists(), m.ours
        if m.benchmark in ("B1", "B2", "B3"):
            assert m.peers == {"rejax 0.1.3": None, "stable-baselines3": None}


def test_unknown_suite_is_named():
    with pytest.raises(ValueError, match="unknown suite 'fast'"):
        suite.plan("fast")
