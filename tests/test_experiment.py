"""The experiment CLI (experiments/ppo.py), grid parsing and the progress reporter."""

from __future__ import annotations

import importlib.util
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from purejaxlib import ConfigError, progress
from purejaxlib.algos import ppo
from purejaxlib.experiment import parse_grid

ROOT = Path(__file__).resolve().parent.parent


def _load_script():
    spec = importlib.util.spec_from_file_location("ppo_script", ROOT / "experiments" / "ppo.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve string annotations through it
    spec.loader.exec_module(module)
    return module


def test_parse_grid_converts_by_field_type():
    grid = parse_grid(ppo.Config, ["lr=1e-4,3e-4", "num_envs=2,4", "hidden=64x64,8", "anneal_lr=true,0"])
    assert grid == {"lr": [1e-4, 3e-4], "num_envs": [2, 4], "hidden": [(64, 64), (8,)], "anneal_lr": [True, False]}
    assert isinstance(grid["num_envs"][0], int)


@pytest.mark.parametrize(
    "spec, match",
    [
        ("learning_rate=1e-3", "did you mean 'lr'"),
        ("lr", "name=value1,value2"),
        ("num_envs=two", "cannot read 'two'"),
        ("anneal_lr=maybe", "cannot read 'maybe'"),
    ],
)
def test_parse_grid_errors_name_the_problem(spec, match):
    with pytest.raises(ConfigError, match=match):
        parse_grid(ppo.Config, [spec])


def test_cli_runs_a_sweep_and_writes_the_record(tmp_path, capsys):
    script = _load_script()
    out = tmp_path / "run"
    summary = script.main([
        "--num-envs", "4", "--num-steps", "16", "--num-minibatches", "2", "--update-epochs", "1",
        "--total-timesteps", "256", "--seeds", "2", "--grid", "lr=1e-3,3e-3", "--out", str(out),
    ])
    assert summary["axes"] == ["lr", "seed"]
    assert np.asarray(summary["final_return"]).shape == (2, 2)
    record = json.loads((out / "summary.json").read_text())
    assert record["config"]["num_envs"] == 4 and record["grid"]["lr"] == [1e-3, 3e-3]
    assert "jax" in record["versions"] and record["backend"] == "cpu"
    with np.load(out / "metrics.npz") as metrics:  # plain arrays: loads without pickle
        assert metrics["episode_return"].shape == (2, 2, 4)
    assert (out / "learning_curve.png").stat().st_size > 1000
    printed = capsys.readouterr()
    assert "seed 0:" in printed.out and "env steps/s" in printed.out
    assert "[4/4]" in printed.err  # progress from inside the compiled program


def test_cli_env_params_and_env_param_grid_are_recorded(tmp_path):
    script = _load_script()
    out = tmp_path / "run"
    summary = script.main([
        "--num-envs", "2", "--num-steps", "16", "--num-minibatches", "2", "--update-epochs", "1",
        "--total-timesteps", "64", "--env-params", "max_steps_in_episode", "50",
        "--grid", "env_params.gravity=5,20", "--out", str(out), "--no-plot", "--no-progress",
    ])
    assert summary["axes"] == ["env_params.gravity", "seed"]
    record = json.loads((out / "summary.json").read_text())  # arrays in env_params are JSON too
    assert record["config"]["env_params"] == {"max_steps_in_episode": 50}
    assert record["grid"]["env_params.gravity"] == [5.0, 20.0]


def test_cli_bad_config_exits_with_the_field_named(tmp_path):
    script = _load_script()
    with pytest.raises(SystemExit) as exc:
        script.main(["--num-envs", "4", "--num-steps", "10", "--num-minibatches", "3", "--out", ""])
    assert "num_minibatches" in str(exc.value.code)


def test_progress_aggregates_vmapped_members_into_one_line():
    stream = io.StringIO()
    with progress.track(total_updates=10, members=3, steps_per_update=100, stream=stream):
        for value in (1.0, 5.0, 3.0):  # the three members of update index 4
            progress._host_report(np.int32(4), np.int32(10), np.float32(value))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("[ 5/10] steps 500") and "return 3.0 (worst 1.0, best 5.0)" in lines[0]
