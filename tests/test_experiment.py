"""The experiment CLI (experiments/ppo.py): grid parsing, the run record and the files it writes."""

from __future__ import annotations

import importlib.util
import json
import logging
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from purejaxlib import ConfigError
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
    argv = [
        "--num-envs",
        "4",
        "--num-steps",
        "16",
        "--num-minibatches",
        "2",
        "--update-epochs",
        "1",
        "--total-timesteps",
        "256",
        "--seeds",
        "2",
        "--grid",
        "lr=1e-3,3e-3",
        "ent_coef=0,0.01",
        "--out",
        str(out),
        "--log-interval",
        "2",
        "--progress",
        "--eval-every",
        "4",
        "--eval-episodes",
        "2",
    ]
    summary = script.main(argv)
    assert summary["axes"] == ["lr", "ent_coef", "seed"]
    assert np.asarray(summary["final_return"]).shape == (2, 2, 2)
    assert np.isfinite(np.asarray(summary["final_eval_return"], np.float64)).all()  # evaluated after update 4
    record = json.loads((out / "record.json").read_text())
    assert record["algorithm"] == "PPO" and record["config"]["num_envs"] == 4
    assert record["grid"] == {"lr": [1e-3, 3e-3], "ent_coef": [0.0, 0.01]} and record["seeds"] == [0, 1]
    session = record["sessions"][-1]
    assert session["command"] == sys.argv[:1] + argv or session["command"] == list(sys.argv)
    assert session["backend"] == "cpu" and session["devices"] and "jax" in session["versions"]
    assert session["status"] == "finished" and session["compile_seconds"] > 0 and session["wall_seconds"] > 0
    assert session["git"] is None or len(session["git"]["commit"]) == 40
    # One record per member per reported update (every 2 updates of 4), labelled with its grid values.
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 8 * 2 and {r["update"] for r in rows} == {2, 4}
    assert {(r["lr"], r["ent_coef"], r["seed"]) for r in rows} == {
        (a, b, s) for a in (1e-3, 3e-3) for b in (0.0, 0.01) for s in (0, 1)
    }
    assert {r["update"] for r in rows if r["eval_return"] is not None} == {4}
    with np.load(out / "curves.npz") as curves:  # plain arrays: loads without pickle
        assert curves["episode_return"].shape == (2, 2, 2, 2)
    for name in ("learning_curve.png", "learning_curve.svg", "heatmap.png", "heatmap.svg"):
        assert (out / name).stat().st_size > 1000, name
    printed = capsys.readouterr()
    assert "seed 0:" in printed.out and "env steps/s" in printed.out and "IQM" in printed.out
    assert "final evaluation return" in printed.out
    assert (
        "256/256 env steps/agent" in printed.err and "worst" in printed.err
    )  # the progress bar, from inside the program


@pytest.mark.slow  # make test-all: make test runs the CLI's sweep and record above
def test_cli_env_params_and_env_param_grid_are_recorded(tmp_path):
    script = _load_script()
    out = tmp_path / "run"
    summary = script.main(
        [
            "--num-envs",
            "2",
            "--num-steps",
            "16",
            "--num-minibatches",
            "2",
            "--update-epochs",
            "1",
            "--total-timesteps",
            "64",
            "--env-params",
            "max_steps_in_episode",
            "50",
            "--grid",
            "env_params.gravity=5,20",
            "--out",
            str(out),
            "--no-plot",
            "--no-progress",
        ]
    )
    assert summary["axes"] == ["env_params.gravity", "seed"]
    record = json.loads((out / "record.json").read_text())  # arrays in env_params are JSON too
    assert record["config"]["env_params"] == {"max_steps_in_episode": 50}
    assert not (out / "learning_curve.png").exists()
    assert record["grid"]["env_params.gravity"] == [5.0, 20.0]


def test_cli_bad_config_exits_with_the_field_named(tmp_path):
    script = _load_script()
    with pytest.raises(SystemExit) as exc:
        script.main(["--num-envs", "4", "--num-steps", "10", "--num-minibatches", "3", "--out", ""])
    assert "num_minibatches" in str(exc.value.code)


def test_sweep_and_run_experiment_agree_at_the_last_update():
    """Both engines give every metric with its x axis (``iteration``, ``env_steps``): a sweep one
    entry per update, an experiment one per report; ``[..., -1]`` is the last update in both."""
    from conftest import small_config
    from test_sweep import AnyCompile

    import purejaxlib

    config = small_config(updates=4).replace(log_interval=3)  # reports after updates 3 and 4
    swept = purejaxlib.sweep(ppo.train, config, seeds=2, lr=[1e-3, 3e-3])
    run = purejaxlib.run_experiment(ppo, config, seeds=2, grid={"lr": [1e-3, 3e-3]}, progress_bar=False)
    np.testing.assert_array_equal(swept.metrics["iteration"][0, 0], [1, 2, 3, 4])
    np.testing.assert_array_equal(run.metrics["iteration"][0, 0], [3, 4])
    assert run.axes == swept.axes and set(run.metrics) == set(swept.metrics)
    for name, values in run.metrics.items():
        if name in ("iteration", "env_steps", "episodes", "episode_return", "episode_length"):
            np.testing.assert_array_equal(values[..., -1], swept.metrics[name][..., -1], err_msg=name)
        else:  # two programs (init, then a chunk of updates) against one: float rounding apart
            np.testing.assert_allclose(
                values[..., -1], swept.metrics[name][..., -1], rtol=1e-5, atol=1e-6, err_msg=name
            )
        np.testing.assert_allclose(values[..., 0], swept.metrics[name][..., 2], rtol=1e-5, atol=1e-6, err_msg=name)
    # A second experiment with new traced values reuses the cached init and chunk programs.
    counter = AnyCompile()
    logger = logging.getLogger("jax._src.interpreters.pxla")
    logger.addHandler(counter)
    try:
        with jax.log_compiles(True):
            again = purejaxlib.run_experiment(ppo, config, seeds=2, grid={"lr": [2e-3, 5e-3]}, progress_bar=False)
    finally:
        logger.removeHandler(counter)
    assert counter.names == [] and again.compile_seconds == 0.0, counter.names
    assert not np.allclose(again.metrics["loss"], run.metrics["loss"])
