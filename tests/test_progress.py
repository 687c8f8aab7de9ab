"""Live reports from inside jit: the host monitor and progress bar, JSON-lines logs of a sweep,
the sharded case, loggers that cannot change the numbers, and memory that does not grow with
the run."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import textwrap
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import small_config

import purejaxlib
from purejaxlib import loggers, progress, runner
from purejaxlib.algos import ppo
from purejaxlib.checkpoint import to_host
from purejaxlib.sweep import compiled

# Compiled as users' runs are (optimized, XLA's default CPU emitters), not at the suite's -O0 with
# classic emitters: logging must not change a bit of the run, and under the classic emitters the
# callbacks' different fusions move floats by an ulp (test_logging_does_not_change_the_numbers).
pytestmark = pytest.mark.optimized

UPDATES = 6
CURVE_POINTS = 3  # smaller than the run's reports, so the curve must thin out


class FakeTerminal(io.StringIO):
    """A stream that says it is a terminal, so the bar redraws in place ("\\r") as on a tty."""

    def isatty(self) -> bool:
        return True


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _screens(text: str) -> list[str]:
    """Every line as drawn: split at newlines and at the carriage returns of in-place redraws."""
    return [part for line in text.split("\n") for part in line.split("\r") if part]


def test_monitor_gathers_members_of_an_update_into_one_progress_line():
    stream = io.StringIO()
    clock = FakeClock()
    bar = progress.ProgressBar(total_updates=10, steps_per_update=100, members=3, stream=stream, clock=clock)
    seen = []
    monitor = progress.Monitor(3, [bar, lambda u, m: seen.append((u, m))])
    for member, value in ((2, 3.0), (0, 1.0), (-1, 99.0), (1, 5.0)):  # any order; -1 is padding
        monitor.add(5, member, {"episode_return": np.float32(value), "loss": np.float32(member)})
    clock.now = 5.0
    monitor.add(10, 0, {"episode_return": np.float32(7.0)})
    assert len(seen) == 1  # update 10 is incomplete until flushed
    monitor.flush()
    (update, metrics), (last, partial) = seen
    assert (
        update == 5 and metrics["episode_return"].tolist() == [1.0, 5.0, 3.0] and metrics["loss"].tolist() == [0, 1, 2]
    )
    assert last == 10 and np.isnan(partial["episode_return"][1:]).all()
    first, second = stream.getvalue().splitlines()  # not a terminal: one line per report, no bar redraws
    assert first.startswith("|#####     | 500/1.00k env steps/agent, IQM return 3.0 (worst 1.0, best 5.0)")
    assert "env steps/s total" not in first  # no rate before a second report
    assert second.startswith(
        "|##########| 1.00k/1.00k env steps/agent, 300 env steps/s total, ETA 00:00, IQM return 7.0"
    )


def test_progress_counts_steps_per_agent_and_steps_per_second_of_all_agents():
    # 4 agents, 100 env steps per agent per update; 2 updates take 2 s after the first report
    # (the compile time before it is left out): 200 steps per agent in 2 s, 800 of all agents.
    stream, clock = io.StringIO(), FakeClock()
    bar = progress.ProgressBar(total_updates=10, steps_per_update=100, members=4, stream=stream, clock=clock)
    clock.now = 30.0
    bar(2, {"episode_return": np.asarray([1.0, 2.0, 3.0, 100.0])})
    clock.now = 32.0
    bar(4, {"episode_return": np.asarray([1.0, 2.0, 3.0, 100.0])})
    line = stream.getvalue().splitlines()[-1]
    assert (
        "| 400/1.00k env steps/agent, 400 env steps/s total, ETA 00:06, IQM return 2.5 (worst 1.0, best 100.0)" in line
    )
    one = io.StringIO()
    single = progress.ProgressBar(total_updates=10, steps_per_update=100, members=1, stream=one, clock=clock)
    single(2, {"episode_return": np.asarray([np.nan])})  # no episode finished yet: no return shown
    clock.now = 34.0
    single(4, {"episode_return": np.asarray([7.5])})
    assert one.getvalue().splitlines()[0].endswith("200/1.00k env steps/agent")
    assert (
        one.getvalue()
        .splitlines()[1]
        .endswith("400/1.00k env steps/agent, 100 env steps/s total, ETA 00:06, return 7.5")
    )


@pytest.mark.parametrize("terminal", [True, False], ids=["terminal", "stream"])
@pytest.mark.parametrize("members", [1, 4])
@pytest.mark.parametrize("ncols", [80, 120])
def test_progress_line_never_exceeds_the_width(ncols, members, terminal):
    stream, clock = (FakeTerminal() if terminal else io.StringIO()), FakeClock()
    # 10M env steps per agent, three-hour ETA, long negative returns, a program label: the longest parts
    bar = progress.ProgressBar(
        total_updates=4883,
        steps_per_update=2048,
        members=members,
        stream=stream,
        label="[2/3]",
        ncols=ncols,
        mininterval=0.0,
        clock=clock,
    )
    for update in (1, 2, 900, 2500, 4883):
        clock.now += 3600.0
        bar(update, {"episode_return": np.linspace(-12345.6, 499.9, members)})
    screens = _screens(stream.getvalue())
    assert screens and all(len(line) <= ncols for line in screens), [len(line) for line in screens]
    assert all(line.startswith("[2/3] ") and "steps/agent" in line for line in screens) and "return" in screens[-1]
    # Parts give way whole (the fit), never cut mid-word by tqdm's last-resort trim.
    whole = re.compile(r"(steps/agent|/s total|ETA [\d:]+|return -?\d+\.\d|best -?\d+\.\d\))$")
    assert all(whole.search(line.rstrip()) for line in screens), screens
    if ncols == 120:  # room for the rate: labelled as all agents' steps
        assert "/s total" in screens[-1]
    if terminal:  # one bar redrawn in place: no newline until it closes at the last update
        assert stream.getvalue().count("\n") == 1 and stream.getvalue().endswith("\n")
        assert len(screens) == 1 + 5 + 1  # drawn empty, at each report, and once more on closing
    else:
        assert "\r" not in stream.getvalue() and len(screens) == 5


def test_fit_status_gives_way_in_order_and_keeps_everything_without_a_width():
    parts = progress.status_parts(262_144, 300_000, 410_000.0, 3.0, np.asarray([450.0, 480.0, 500.0, 500.0]))
    bar, text = progress.fit_status("", parts, None)
    assert (
        bar
        and text
        == "262k/300k env steps/agent, 410k env steps/s total, ETA 00:03, IQM return 490.0 (worst 450.0, best 500.0)"
    )
    widest = len("|| ") + progress.MIN_BAR + len(text)
    assert progress.fit_status("", parts, widest) == (True, text)
    assert progress.fit_status("", parts, widest - 1) == (
        True,
        "262k/300k env steps/agent, 410k env steps/s total, ETA 00:03, IQM return 490.0",
    )
    assert progress.fit_status("", parts, 80) == (
        True,
        "262k/300k steps/agent, 410k/s total, ETA 00:03, IQM return 490.0",
    )
    assert progress.fit_status("", parts, 60) == (True, "262k/300k steps/agent, IQM return 490.0")
    assert progress.fit_status("", parts, 30) == (False, "262k/300k steps/agent")


def test_progress_is_off_by_default_under_pytest_and_when_stderr_is_not_a_terminal(monkeypatch):
    assert not progress.enabled_by_default()
    monkeypatch.delenv("PYTEST_CURRENT_TEST")
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert not progress.enabled_by_default()
    monkeypatch.setattr(sys, "stderr", types.SimpleNamespace(isatty=lambda: True))
    assert progress.enabled_by_default()


def test_curve_memory_is_bounded_and_keeps_the_latest_report():
    short, long = progress.Curve(capacity=8), progress.Curve(capacity=8)
    for curve, reports in ((short, 20), (long, 200)):
        for update in range(1, reports + 1):
            curve(update, {"episode_return": np.full(3, float(update)), "other": np.zeros(3)})
    for curve, reports in ((short, 20), (long, 200)):
        updates, values = curve.arrays()
        assert len(updates) <= 9 and updates[0] == 1 and updates[-1] == reports
        assert np.all(np.diff(updates) > 0) and set(values) == {"episode_return"}
        assert values["episode_return"].shape == (3, len(updates))
        assert np.array_equal(values["episode_return"][0], updates.astype(float))


@pytest.fixture(scope="module")
def logged_sweep(tmp_path_factory):
    """A 2 x 3 grid (lr x ent_coef, one seed) run with logging every update, and the same grid
    as a plain sweep with no reports at all."""
    out = tmp_path_factory.mktemp("logged") / "run"
    config = small_config(updates=UPDATES)
    grid = {"lr": [1e-3, 3e-3], "ent_coef": [0.0, 0.01, 0.02]}
    logged = runner.run_experiment(
        ppo,
        config,
        seeds=1,
        grid=grid,
        out=out,
        log_interval=1,
        progress_bar=False,
        tensorboard=True,
        curve_points=CURVE_POINTS,
    )
    plain = purejaxlib.sweep(ppo.train, config.replace(log_interval=0), seeds=1, **grid)
    return out, logged, plain


def test_jsonl_has_one_stream_per_member_with_its_grid_values(logged_sweep):
    out, _, plain = logged_sweep
    rows = loggers.read_jsonl(out / "metrics.jsonl")
    assert len(rows) == 6 * UPDATES
    streams = {}
    for row in rows:
        streams.setdefault(row["member"], []).append(row)
    assert sorted(streams) == list(range(6))
    for member, stream in streams.items():
        i, j = divmod(member, 3)
        assert {(r["lr"], r["ent_coef"], r["seed"]) for r in stream} == {([1e-3, 3e-3][i], [0.0, 0.01, 0.02][j], 0)}
        assert [r["update"] for r in stream] == list(range(1, UPDATES + 1))
        # The logged values are the metrics a plain sweep returns. (Not to the bit: the runner
        # compiles init and the update chunk as separate programs, which XLA fuses differently.)
        for name in ("episode_return", "loss", "entropy", "env_steps"):
            expected = plain.metrics[name][i, j, 0]
            logged = np.asarray([np.nan if r[name] is None else r[name] for r in stream], np.float32)
            np.testing.assert_allclose(logged, expected, rtol=1e-5, err_msg=name)


def test_logging_does_not_change_the_numbers(logged_sweep, capsys):
    _, _, plain = logged_sweep
    config = small_config(updates=UPDATES).replace(log_interval=1)
    logged = purejaxlib.sweep(
        ppo.train, config, seeds=1, progress_bar=True, lr=[1e-3, 3e-3], ent_coef=[0.0, 0.01, 0.02]
    )
    lines = capsys.readouterr().err.splitlines()
    steps = 64 * UPDATES  # env steps per agent of the whole run
    assert len(lines) == UPDATES and f"{steps}/{steps} env steps/agent" in lines[-1]  # a report every update
    a, b = to_host(logged.programs[0]["state"]), to_host(plain.programs[0]["state"])
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    for name in plain.metrics:
        assert np.array_equal(logged.metrics[name], plain.metrics[name], equal_nan=True), name


def _scalars(run_dir, tag: str) -> list[tuple[int, float]]:
    """``(step, value)`` of one tag from a TensorBoard event directory (TFRecord framing)."""
    import struct

    from tensorboardX.proto import event_pb2

    out = []
    for path in sorted(run_dir.glob("events.out.tfevents.*")):
        data = path.read_bytes()
        offset = 0
        while offset < len(data):
            (length,) = struct.unpack("<Q", data[offset : offset + 8])
            event = event_pb2.Event.FromString(data[offset + 12 : offset + 12 + length])
            offset += 16 + length
            out += [(event.step, v.simple_value) for v in event.summary.value if v.tag == tag]
    return out


def test_tensorboard_event_files_per_member(logged_sweep):
    scalars = _scalars
    out, _, plain = logged_sweep
    runs = sorted(p.name for p in (out / "tensorboard").iterdir())
    assert len(runs) == 6 and "lr=0.001,ent_coef=0.01,seed=0" in runs
    values = scalars(out / "tensorboard" / "lr=0.003,ent_coef=0.02,seed=0", "loss")
    assert [step for step, _ in values] == [64 * u for u in range(1, UPDATES + 1)]
    assert np.allclose([v for _, v in values], plain.metrics["loss"][1, 2, 0])


def test_wandb_logs_only_when_asked_and_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "wandb", None)  # not installed
    with pytest.raises(ImportError, match="pip install wandb"):
        loggers.WandbLogger("proj", "run", {}, [{"seed": 0}])
    calls = []
    fake = types.SimpleNamespace(
        init=lambda **kw: (
            calls.append(("init", kw))
            or types.SimpleNamespace(
                id="abc",
                log=lambda row, step: calls.append(("log", row, step)),
                finish=lambda: calls.append(("finish",)),
            )
        )
    )
    monkeypatch.setitem(sys.modules, "wandb", fake)
    logger = loggers.WandbLogger("proj", "run", {"lr": 1e-3}, [{"seed": 0}, {"seed": 1}])
    logger(4, {"episode_return": np.asarray([10.0, 20.0])})
    logger.close()
    assert calls[0][0] == "init" and calls[0][1]["project"] == "proj" and calls[0][1]["config"] == {"lr": 1e-3}
    _, row, step = calls[1]
    assert step == 4 and row["episode_return/mean"] == 15.0 and row["seed=1/episode_return"] == 20.0
    assert calls[-1] == ("finish",)


def test_run_metrics_memory_does_not_grow_with_the_run(logged_sweep):
    config = small_config(updates=UPDATES)
    ids = np.arange(2, dtype=np.int32)
    batch = jax.tree.map(lambda x: np.broadcast_to(x, (2,) + np.shape(x)), config)
    keys = jax.random.split(jax.random.key(0), 2)
    state = jax.eval_shape(jax.vmap(ppo.init), batch, keys)
    job = runner.experiment_job(ppo)

    def device_bytes(length: int) -> int:  # the executor's chunk program, as run_experiment compiles it
        args = (ids, batch, keys, state, jnp.int32(0))
        executable, _ = compiled(
            (job.name, "chunk", length), job.chunk(length), args, jax.devices()[:1], (0, 0, 0, 0, None), (3,)
        )
        stats = executable.memory_analysis()
        return stats.temp_size_in_bytes + stats.output_size_in_bytes

    # A chunk of 10x more updates needs no more device memory: its metrics are not kept
    # (a scan returning them would need 90 more updates x 2 members x 12 float32 metrics).
    short = device_bytes(10)
    assert short > 0 and device_bytes(100) == short
    # On the host the run keeps a bounded curve (at most curve_points + 1 reports per member)
    # while every report is streamed to the metrics file.
    out, logged, _ = logged_sweep
    assert logged.metrics["episode_return"].shape == (2, 3, 1, CURVE_POINTS + 1) and CURVE_POINTS + 1 < UPDATES
    assert len(loggers.read_jsonl(out / "metrics.jsonl")) == 6 * UPDATES


SHARDED_CHILD = textwrap.dedent(
    """
    import io, json, sys
    import jax
    from purejaxlib import progress, runner
    from purejaxlib.algos import ppo
    sys.path.insert(0, 'tests')
    from conftest import small_config

    config = small_config(updates=4)
    outputs = {}
    for name, devices in (("sharded", jax.devices()), ("single", jax.devices()[:1])):
        stream = io.StringIO()
        bar = progress.ProgressBar
        progress.ProgressBar = lambda *a, **k: bar(*a, **{**k, "stream": stream})
        runner.run_experiment(ppo, config, seeds=3, out=sys.argv[1] + "/" + name, log_interval=2, progress_bar=True,
                              devices=devices)
        progress.ProgressBar = bar
        outputs[name] = {"lines": stream.getvalue().splitlines(),
                         "jsonl": open(sys.argv[1] + "/" + name + "/metrics.jsonl").read()}
    print("RESULT " + json.dumps({"devices": jax.device_count(), **outputs}))
    """
)


# make test-all: a multi-device child process; make test keeps test_sweep.py's
@pytest.mark.slow
def test_sharded_sweep_reports_every_member_once(tmp_path):
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run(
        [sys.executable, "-c", SHARDED_CHILD, str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        cwd=root,
    )
    assert proc.returncode == 0, proc.stderr[-5000:]
    out = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))[len("RESULT ") :])
    assert out["devices"] == 2
    # 3 members padded to 4 on 2 devices: one line per reported update, the padding ignored.
    lines = out["sharded"]["lines"]
    assert (
        len(lines) == 2 and "128/256 env steps/agent" in lines[0] and "256/256 env" in lines[1] and "worst" in lines[1]
    )
    rows = [json.loads(line) for line in out["sharded"]["jsonl"].splitlines()]
    assert sorted((r["update"], r["member"], r["seed"]) for r in rows) == [(u, m, m) for u in (2, 4) for m in range(3)]
    single = [json.loads(line) for line in out["single"]["jsonl"].splitlines()]
    assert len(single) == len(rows)
    for a, b in zip(rows, single):  # equal up to rounding: 2 members per device vectorize differently
        assert a.keys() == b.keys()
        for key in a:
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-7, nan_ok=True), key
