"""Several processes, one run (purejaxlib.distributed): child CPU processes on 127.0.0.1 joined by
jax.distributed, two simulated devices each, against one process with all the devices."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np
import pytest
from conftest import SMALL

import purejaxlib.experiment
from purejaxlib import distributed
from purejaxlib.config import ConfigError

# Counters and returns are computed identically on any device split; losses only to float rounding.
EXACT = ("env_steps", "episodes", "episode_length", "episode_return", "iteration")
SEEDS = 4
UPDATES = 3
CHILD_SECONDS = 240  # under conftest's hang guard (300 s): a hang fails this test, not the session

CHILD = textwrap.dedent(
    """
    import faulthandler, json, os, sys
    from purejaxlib import distributed

    mode, port, processes, process_id, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    settings = json.loads(sys.argv[6])
    faulthandler.dump_traceback_later(settings["hang_seconds"], exit=True)  # a hang shows its stacks
    if processes > 1:
        distributed.initialize(f"127.0.0.1:{port}", processes, process_id, initialization_timeout=120,
                               heartbeat_timeout=10)
        if mode == "die" and process_id == 1:
            os._exit(3)  # dies after joining, while process 0 goes on to train
    import jax
    import numpy as np
    import purejaxlib
    from purejaxlib.algos import ppo

    config = ppo.Config(env="CartPole-v1", **settings["config"])
    if mode in ("experiment", "resume"):
        result = purejaxlib.run_experiment(ppo, config, seeds=settings["seeds"], out=out, checkpoint_every=1,
                                           resume=mode == "resume", progress_bar=False)
    else:  # "mismatch": each process is (wrongly) given its own number of seeds
        seeds = settings["seeds"] + (process_id if mode == "mismatch" else 0)
        result = purejaxlib.sweep(ppo.train, config, seeds=seeds)
    print("RESULT " + json.dumps({
        "process": jax.process_index(),
        "devices": jax.device_count(),
        "metrics": {k: np.asarray(v, np.float64).tolist() for k, v in result.metrics.items()},
        "params": [np.asarray(x).tolist() for x in jax.tree.leaves(result.programs[0]["state"].params)],
    }), flush=True)
    """
)
SETTINGS = json.dumps(
    {
        "hang_seconds": CHILD_SECONDS - 15,
        "seeds": SEEDS,
        "config": {"total_timesteps": UPDATES * SMALL["num_envs"] * SMALL["num_steps"], **SMALL},
    }
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(mode: str, runs: list[tuple[int, int, str]], timeout: float = CHILD_SECONDS) -> list[dict]:
    """Starts one child per ``(processes, devices, out)`` in ``runs`` at once (those of a
    multi-process run join on one port); waits for all. Returns each child's ``returncode``,
    ``stderr`` and ``result`` (its RESULT line, or None). Output goes to files, so no child
    blocks on a full pipe while its peers wait for it."""
    port = free_port()
    ids: dict[int, int] = {}
    with contextlib.ExitStack() as files:
        children, logs = [], []
        for processes, devices, out in runs:
            process_id = ids.get(processes, 0)
            ids[processes] = process_id + 1
            flags = f"--xla_force_host_platform_device_count={devices}"
            env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": flags}
            argv = [sys.executable, "-c", CHILD, mode, str(port), str(processes), str(process_id), out, SETTINGS]
            stdout, stderr = (files.enter_context(tempfile.TemporaryFile("w+")) for _ in range(2))
            logs.append((stdout, stderr))
            children.append(subprocess.Popen(argv, env=env, stdout=stdout, stderr=stderr, start_new_session=True))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(child.poll() is None for child in children):
            time.sleep(0.5)
        hung = [i for i, child in enumerate(children) if child.poll() is None]
        for i in hung:
            os.killpg(children[i].pid, signal.SIGKILL)
            children[i].wait()
        outputs = []
        for child, (stdout, stderr) in zip(children, logs):
            stdout.seek(0)
            stderr.seek(0)
            line = next((row for row in stdout.read().splitlines() if row.startswith("RESULT ")), None)
            result = json.loads(line[len("RESULT ") :]) if line else None
            outputs.append({"returncode": child.returncode, "stderr": stderr.read(), "result": result})
    if hung:
        tails = "\n".join(f"--- child {i} stderr:\n{outputs[i]['stderr'][-2000:]}" for i in hung)
        pytest.fail(f"{mode}: children {hung} did not finish in {timeout:.0f} s (a hang)\n{tails}")
    return outputs


def check_ok(outputs: list[dict]) -> list[dict]:
    failed = [i for i, out in enumerate(outputs) if out["returncode"] != 0 or not out["result"]]
    tails = "\n".join(
        f"--- child {i} (exit {outputs[i]['returncode']}):\n{outputs[i]['stderr'][-3000:]}" for i in failed
    )
    assert not failed, f"children {failed} failed:\n{tails}"
    return [out["result"] for out in outputs]


def assert_same_run(a: dict, b: dict, exact: bool = False) -> None:
    assert sorted(a["metrics"]) == sorted(b["metrics"])
    for name in a["metrics"]:
        x, y = np.asarray(a["metrics"][name]), np.asarray(b["metrics"][name])
        assert x.shape == y.shape and x.shape[:1] == (SEEDS,), (name, x.shape, y.shape)
        if exact or name in EXACT:
            np.testing.assert_array_equal(x, y, err_msg=name)
        else:
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6, err_msg=name)
    for x, y in zip(a["params"], b["params"]):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6)


def test_two_processes_give_the_metrics_of_one_process_with_four_devices():
    # process 0 and 1 of a two-process run (2 devices each), and one process with 4 devices, at once
    first, second, alone = check_ok(launch("sweep", [(2, 2, ""), (2, 2, ""), (1, 4, "")]))
    assert (first["process"], second["process"], alone["process"]) == (0, 1, 0)
    assert first["devices"] == second["devices"] == alone["devices"] == 4
    assert_same_run(first, second, exact=True)  # every process holds the whole result
    assert_same_run(first, alone)
    assert np.asarray(first["metrics"]["iteration"]).shape == (SEEDS, UPDATES)


def test_a_dead_process_ends_the_other_with_an_error_instead_of_a_hang():
    survivor, dead = launch("die", [(2, 2, ""), (2, 2, "")], timeout=150)
    assert dead["returncode"] == 3, dead["stderr"][-3000:]
    assert survivor["returncode"] != 0 and survivor["result"] is None, survivor["stderr"][-3000:]
    assert "another task died" in survivor["stderr"], survivor["stderr"][-3000:]


# make test-all: two more child processes; make test keeps the equality and dead-process tests
@pytest.mark.slow
def test_processes_started_with_different_settings_fail_naming_the_setting():
    outputs = launch("mismatch", [(2, 2, ""), (2, 2, "")], timeout=150)
    for out in outputs:
        assert out["returncode"] != 0 and out["result"] is None, out["stderr"][-3000:]
    assert any(
        "must be started with the same settings" in out["stderr"] and "seeds:" in out["stderr"] for out in outputs
    )


@pytest.mark.slow
def test_process_0_alone_writes_the_run_and_both_resume_from_its_checkpoints(tmp_path):
    # each process is given its own --out; process 1 must not create its own
    run, other = tmp_path / "run", tmp_path / "other"
    first = check_ok(launch("experiment", [(2, 2, str(run)), (2, 2, str(other))]))
    assert not other.exists()
    steps = sorted(int(p.name) for p in (run / "checkpoints" / "program-0").iterdir() if p.name.isdigit())
    assert steps == list(range(1, UPDATES + 1))
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert sorted((r["update"], r["member"]) for r in records) == [
        (u, m) for u in range(1, UPDATES + 1) for m in range(SEEDS)
    ]
    assert_same_run(first[0], first[1], exact=True)
    for values in first[0]["metrics"].values():  # every member's reports reached both processes
        assert np.isfinite(np.asarray(values)[..., -1]).all()
    # resume from update 2: process 0 reads its checkpoint and hands it to process 1 (no shared files)
    shutil.rmtree(run / "checkpoints" / "program-0" / str(UPDATES))
    resumed = check_ok(launch("resume", [(2, 2, str(run)), (2, 2, str(other))]))
    assert not other.exists()
    for before, after in zip(first, resumed):
        assert_same_run(before, after, exact=True)


# ---------------------------------------------------------------------------------------------
# in this process (one process: every helper is the plain path)


@pytest.mark.parametrize(
    "args, flag",
    [
        (("10.0.0.1", 2, 0), "--coordinator"),
        (("10.0.0.1:port", 2, 0), "--coordinator"),
        (("10.0.0.1:1234", 0, 0), "--num-processes"),
        (("10.0.0.1:1234", 2, 2), "--process-id"),
        (("10.0.0.1:1234", 2, -1), "--process-id"),
        (("10.0.0.1:1234", 2, None), "--process-id"),
    ],
)
def test_inconsistent_arguments_name_the_flag(args, flag):
    with pytest.raises(ConfigError, match=flag):
        distributed.initialize(*args)


def test_one_process_helpers_are_the_plain_path():
    tree = {"a": np.arange(4.0), "b": [1, 2]}
    assert distributed.is_main() and not distributed.is_multiprocess()
    assert distributed.place(tree) is tree and distributed.fetch(tree) is tree
    assert distributed.from_main(lambda: tree) is tree
    assert distributed.allgather_objects("x") == ["x"] and distributed.broadcast_object("x") == "x"
    reports = {1: {0: {"loss": 1.0}}}
    assert distributed.share_reports(reports) is reports

    def fails():
        raise ConfigError("read failed")

    with pytest.raises(ConfigError, match="read failed"):
        distributed.from_main(fails)
    sharding = distributed.batch_sharding()
    assert sharding.mesh.axis_names == (distributed.BATCH_AXIS,)


def test_cli_flags_reach_initialize(monkeypatch):
    calls = []

    class Joined(Exception):
        pass

    def fake_initialize(*args):
        calls.append(args)
        raise Joined

    from purejaxlib.algos import ppo

    monkeypatch.setattr(distributed, "initialize", fake_initialize)
    with pytest.raises(Joined):
        purejaxlib.experiment.cli(
            ppo, "PPO", ["--coordinator", "10.0.0.1:1234", "--num-processes", "2", "--process-id", "1", "--out", "none"]
        )
    with pytest.raises(Joined):
        purejaxlib.experiment.cli(ppo, "PPO", ["--distributed", "--out", "none"])
    assert calls == [("10.0.0.1:1234", 2, 1), (None, None, None)]
