"""Checkpoint and resume: a run killed with SIGKILL and resumed ends bitwise-identical to one never
interrupted; unfinished or corrupted checkpoints are skipped with a warning; a checkpoint refuses
a different config, naming the fields."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from purejaxlib import ConfigError
from purejaxlib.algos import dqn, iql, ppo
from purejaxlib.checkpoint import IncompatibleCheckpoint, to_host
from purejaxlib.runner import load_state, run_experiment

ROOT = Path(__file__).resolve().parent.parent

# Small enough to compile in seconds; long enough (with a checkpoint every 10 updates) that the
# child is still training when the test kills it.
PPO_FIELDS = dict(env="CartPole-v1", num_envs=4, num_steps=16, num_minibatches=2, update_epochs=1, hidden=(16, 16))
PPO_UPDATES = 200
DQN_FIELDS = dict(
    env="CartPole-v1",
    num_envs=2,
    train_freq=2,
    gradient_steps=1,
    batch_size=16,
    buffer_size=256,
    learning_starts=60,
    hidden=(16, 16),
    target_update_interval=8,
    n_step=2,
    lr=1e-3,
)
DQN_UPDATES = 200  # iterations of 4 env steps; warm-up ends inside the first chunk
# offline: gradient steps on a dataset written by the test (_offline_data)
IQL_DATA = Path(os.environ.get("TMPDIR", "/tmp")) / f"purejaxlib-test-iql-{os.getpid()}.npz"
IQL_FIELDS = dict(
    env="CartPole-v1", hidden=(16, 16), batch_size=16, gradient_steps=2, offline_updates=400, dataset=str(IQL_DATA)
)
IQL_UPDATES = 200
EVERY = 10
SEEDS = 2


def _offline_data(path: Path) -> None:
    from purejaxlib import offline

    data = offline.collect("CartPole-v1", offline.behaviour("CartPole-v1", None), jax.random.key(0), 512, 4)
    offline.save(data, path)


def _cli_args(fields: dict, total: int, out: Path) -> list[str]:
    args = []
    for name, value in fields.items():
        flag = "--" + name.replace("_", "-")
        args += [flag, *map(str, value)] if isinstance(value, tuple) else [flag, str(value)]
    return args + [
        "--total-timesteps",
        str(total),
        "--seeds",
        str(SEEDS),
        "--out",
        str(out),
        "--checkpoint-every",
        str(EVERY),
        "--log-interval",
        "5",
        "--no-plot",
        "--no-progress",
    ]


def _run(algo, fields, total, out, **kwargs):
    config = algo.Config(total_timesteps=total, **fields).replace(log_interval=5)
    return run_experiment(
        algo,
        config,
        seeds=SEEDS,
        out=out,
        checkpoint_every=EVERY,
        progress_bar=False,
        name=algo.__name__.rsplit(".", 1)[-1].upper(),
        **kwargs,
    )


def _like(algo, fields, total):
    config = algo.Config(total_timesteps=total, **fields)
    batch = jax.tree.map(lambda x: np.broadcast_to(x, (SEEDS,) + np.shape(x)), config)
    return jax.eval_shape(jax.vmap(algo.init), batch, jax.random.split(jax.random.key(0), SEEDS))


def _final(run_dir, algo, fields, total):
    update, state, _ = load_state(run_dir, _like(algo, fields, total))
    return update, to_host(state)


def _kill_mid_run(script: str, args: list[str], out: Path, total: int) -> int:
    """Starts the script, SIGKILLs it once its second checkpoint is committed; returns the newest
    committed checkpoint at that moment."""
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "experiments" / script), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    directory = out / "checkpoints" / "program-0"
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            steps = [int(p.name) for p in directory.glob("*") if p.name.isdigit()] if directory.exists() else []
            if max(steps, default=0) >= 2 * EVERY or proc.poll() is not None:
                break
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL, f"the child exited {proc.returncode} before the kill:\n{err[-3000:]!r}"
    steps = [int(p.name) for p in directory.glob("*") if p.name.isdigit()]
    assert 0 < max(steps) < total, steps
    return max(steps)


@pytest.mark.parametrize(
    "algo, script, fields, updates",
    [
        (ppo, "ppo.py", PPO_FIELDS, PPO_UPDATES),
        # one algorithm in `make test`; the off-policy loop's resume in `make test-all`
        pytest.param(dqn, "dqn.py", DQN_FIELDS, DQN_UPDATES, marks=pytest.mark.slow),
        pytest.param(iql, "iql.py", IQL_FIELDS, IQL_UPDATES, marks=pytest.mark.slow),
    ],
    ids=["ppo", "dqn", "iql-offline"],
)
def test_sigkilled_run_resumes_bitwise_identical(tmp_path, algo, script, fields, updates):
    if "dataset" in fields:
        _offline_data(Path(fields["dataset"]))
    total = updates * algo.Config(**fields).steps_per_update
    whole = _run(algo, fields, total, tmp_path / "whole")

    killed = tmp_path / "killed"
    last = _kill_mid_run(script, _cli_args(fields, total, killed), killed, updates)
    resumed = _run(algo, fields, total, killed, resume=True)
    assert resumed.record["sessions"][-1]["resumed_from"] == {"0": last}

    update_a, state_a = _final(tmp_path / "whole", algo, fields, total)
    update_b, state_b = _final(killed, algo, fields, total)
    assert update_a == update_b == updates
    assert len(state_a) == len(state_b)
    for a, b in zip(state_a, state_b):
        assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)
    # The killed run's records past its last checkpoint were cut before resuming: the metrics
    # files are the same bytes, and so are the in-memory curves (rebuilt from the file).
    assert (tmp_path / "whole" / "metrics.jsonl").read_text() == (killed / "metrics.jsonl").read_text()
    assert whole.metrics.keys() == resumed.metrics.keys()
    for name in whole.metrics:
        assert np.array_equal(whole.metrics[name], resumed.metrics[name], equal_nan=True), name


# ---------------------------------------------------------------------------------------------
# Unfinished, corrupted and mismatched checkpoints (one short finished run, copied per test)

SHORT = 3 * EVERY  # checkpoints at 10, 20 and 30


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("finished") / "run"
    _run(ppo, PPO_FIELDS, SHORT * 64, out)
    return out, _final(out, ppo, PPO_FIELDS, SHORT * 64)[1]


def _copy(finished, tmp_path) -> Path:
    import shutil

    target = tmp_path / "run"
    shutil.copytree(finished[0], target)
    return target


def _largest_array_file(step_dir: Path) -> Path:
    files = [p for p in (step_dir / "state").rglob("*") if p.is_file() and "ocdbt.process" in str(p)]
    return max(files, key=lambda p: p.stat().st_size)


def test_unfinished_checkpoint_is_skipped_with_a_warning(finished, tmp_path):
    run = _copy(finished, tmp_path)
    unfinished = run / "checkpoints" / "program-0" / f"{SHORT + EVERY}.orbax-checkpoint-tmp-1234"
    (unfinished / "state").mkdir(parents=True)
    (unfinished / "state" / "half").write_bytes(b"\0" * 100)
    with pytest.warns(UserWarning, match="skipping unfinished checkpoint"):
        result = _run(ppo, PPO_FIELDS, SHORT * 64, run, resume=True)
    assert result.record["sessions"][-1]["resumed_from"] == {"0": SHORT}


@pytest.mark.parametrize("damage", ["garbage", "missing"])
def test_corrupted_checkpoint_is_moved_aside_and_the_previous_one_used(finished, tmp_path, damage):
    run = _copy(finished, tmp_path)
    newest = run / "checkpoints" / "program-0" / str(SHORT)
    victim = _largest_array_file(newest)
    if damage == "garbage":  # same size, different bytes: only a checksum notices
        victim.write_bytes(np.random.default_rng(0).bytes(victim.stat().st_size))
    else:
        victim.unlink()
    with pytest.warns(UserWarning, match=f"checkpoint .*{SHORT} is unreadable"):
        result = _run(ppo, PPO_FIELDS, SHORT * 64, run, resume=True)
    assert result.record["sessions"][-1]["resumed_from"] == {"0": SHORT - EVERY}
    assert len(list((run / "checkpoints" / "corrupt").iterdir())) == 1  # kept for inspection
    # Training again from the previous checkpoint reproduces the lost one exactly.
    _, state = _final(run, ppo, PPO_FIELDS, SHORT * 64)
    assert all(np.array_equal(a, b) for a, b in zip(finished[1], state))


def test_resume_with_a_different_config_names_the_fields(finished, tmp_path):
    run = _copy(finished, tmp_path)
    config = ppo.Config(total_timesteps=SHORT * 64, **{**PPO_FIELDS, "hidden": (32, 32)}).replace(
        lr=1e-2, log_interval=3
    )
    with pytest.raises(IncompatibleCheckpoint) as err:
        run_experiment(
            ppo, config, seeds=SEEDS, out=run, checkpoint_every=EVERY, progress_bar=False, name="PPO", resume=True
        )
    message = str(err.value)
    assert "hidden: [16, 16] (checkpoint) vs [32, 32] (now)" in message and "lr:" in message
    assert "log_interval" not in message  # changes what is logged, not what is computed
    with pytest.raises(IncompatibleCheckpoint, match=r"seeds: \[0, 1\] \(checkpoint\) vs \[0, 1, 2\]"):
        run_experiment(
            ppo,
            config.replace(hidden=(16, 16), lr=2.5e-4),
            seeds=3,
            out=run,
            checkpoint_every=EVERY,
            progress_bar=False,
            name="PPO",
            resume=True,
        )
    assert sorted(p.name for p in (run / "checkpoints" / "program-0").iterdir()) == ["10", "20", "30"]  # untouched


def test_existing_checkpoints_are_not_overwritten_without_resume(finished, tmp_path):
    run = _copy(finished, tmp_path)
    with pytest.raises(ConfigError, match="resume"):
        _run(ppo, PPO_FIELDS, SHORT * 64, run)
    assert (run / "metrics.jsonl").read_text() == (finished[0] / "metrics.jsonl").read_text()


def test_cli_resume_mismatch_exits_with_the_message(finished, tmp_path):
    run = _copy(finished, tmp_path)
    args = _cli_args(PPO_FIELDS, SHORT * 64, run) + ["--resume", "--gamma", "0.9"]
    proc = subprocess.run(
        [sys.executable, str(ROOT / "experiments" / "ppo.py"), *args],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    assert proc.returncode != 0 and "gamma: 0.99" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param(dict(recurrent="lstm", cell_size=8), marks=pytest.mark.slow),
        pytest.param(
            dict(advantage="group", group_size=2, ref_kl_coef=0.1, ref_update_interval=7), marks=pytest.mark.slow
        ),
    ],
    ids=["lstm", "group"],
)
def test_resume_restores_recurrent_and_critic_free_state(tmp_path, extra):
    """The LSTM's cell state and episode-start flags and the group mode's KL reference go through
    the checkpoint: resuming from update 10 of 30 ends bitwise equal to the whole run."""
    import shutil

    fields = {**PPO_FIELDS, **extra}
    total = SHORT * ppo.Config(**fields).steps_per_update
    _run(ppo, fields, total, tmp_path / "whole")
    shutil.copytree(tmp_path / "whole", tmp_path / "cut")
    for step in (2 * EVERY, 3 * EVERY):
        shutil.rmtree(tmp_path / "cut" / "checkpoints" / "program-0" / str(step))
    resumed = _run(ppo, fields, total, tmp_path / "cut", resume=True)
    assert resumed.record["sessions"][-1]["resumed_from"] == {"0": EVERY}
    (_, whole), (_, cut) = _final(tmp_path / "whole", ppo, fields, total), _final(tmp_path / "cut", ppo, fields, total)
    assert len(whole) == len(cut)
    for a, b in zip(whole, cut):
        assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)
