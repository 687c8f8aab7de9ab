"""purejaxlib.sweep: grid x seeds in one program per static combination, equal to runs alone.

Sweep entries are compared with ``jax.jit(ppo.train)`` run alone. They are not bitwise equal: the
vmapped program fuses and vectorizes float reductions differently from the unbatched one, which
moves losses and parameters by float32 rounding (parameters by ~3e-8 after 3 updates). The
discrete outcomes (episode returns, lengths, counts, env steps) are compared exactly; float
metrics and parameters with rtol 1e-5 on short (3-update) runs, where rounding cannot compound.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest
from conftest import small_config

import purejaxlib
from purejaxlib.algos import ppo

UPDATES = 3
EXACT = ("episode_return", "episode_length", "episodes", "env_steps")


@pytest.fixture(scope="module")
def config():
    return small_config("CartPole-v1", UPDATES)  # num_envs=4, num_steps=16: 192 steps


@pytest.fixture(scope="module")
def train_alone():
    """``jax.jit(ppo.train)`` -> (metrics, params) as numpy, cached by (config, seed); one compile
    per static config."""
    fn = jax.jit(ppo.train)
    cache = {}

    def run(cfg, seed):
        key = (cfg.num_envs, float(cfg.lr), float(cfg.ent_coef), seed)
        if key not in cache:
            result = fn(cfg, jax.random.key(seed))
            cache[key] = (jax.tree.map(np.asarray, result.metrics), jax.tree.map(np.asarray, result.state.params))
        return cache[key]

    return run


@pytest.fixture(scope="module")
def traced_sweep(config):
    return purejaxlib.sweep(ppo.train, config, seeds=2, lr=[1e-3, 3e-3], ent_coef=[0.0, 0.01])


@pytest.fixture(scope="module")
def static_sweep(config):
    # num_envs=2 gives 192 / 32 = 6 updates, num_envs=4 gives 3: the shorter runs are NaN-padded.
    return purejaxlib.sweep(ppo.train, config, seeds=2, lr=[1e-3, 3e-3], num_envs=[2, 4])


def assert_metrics_match(swept: dict, alone: dict, index: tuple, length: int | None = None):
    for name, value in alone.items():
        got = swept[name][index]
        if length is not None:
            got = got[:length]
        if name in EXACT:
            np.testing.assert_array_equal(got, value, err_msg=f"{name} at {index}")
        else:
            np.testing.assert_allclose(got, value, rtol=1e-5, atol=1e-6, err_msg=f"{name} at {index}")


def assert_params_match(swept_params, alone_params, index):
    for a, b in zip(jax.tree.leaves(swept_params), jax.tree.leaves(alone_params)):
        np.testing.assert_allclose(np.asarray(a)[index], b, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# traced grid: one program


def test_traced_sweep_axes_grid_and_shapes(traced_sweep):
    r = traced_sweep
    assert r.axes == ("lr", "ent_coef", "seed")
    assert r.grid == {"lr": [1e-3, 3e-3], "ent_coef": [0.0, 0.01], "seed": [0, 1]}
    assert len(r.programs) == 1
    for name, value in r.metrics.items():
        assert value.shape == (2, 2, 2, UPDATES), (name, value.shape)
    np.testing.assert_array_equal(r.metrics["iteration"][0, 0, 0], np.arange(1, UPDATES + 1))
    assert r.compile_seconds >= 0 and r.run_seconds > 0  # 0 s compiling when an earlier test compiled it


def test_traced_sweep_entry_equals_train_alone(config, traced_sweep, train_alone):
    r = traced_sweep
    for i, lr in enumerate(r.grid["lr"]):
        for j, ent_coef in enumerate(r.grid["ent_coef"]):
            for k, seed in enumerate(r.grid["seed"]):
                metrics, params = train_alone(config.replace(lr=lr, ent_coef=ent_coef), seed)
                assert_metrics_match(r.metrics, metrics, (i, j, k))
                assert_params_match(r.programs[0]["state"].params, params, (i, j, k))


def test_traced_sweep_members_really_differ(traced_sweep):
    loss = traced_sweep.metrics["loss"]
    assert not np.allclose(loss[0, 0, 0], loss[1, 0, 0])  # lr
    assert not np.allclose(loss[0, 0, 0], loss[0, 1, 0])  # ent_coef
    assert not np.allclose(loss[0, 0, 0], loss[0, 0, 1])  # seed


# ---------------------------------------------------------------------------------------------
# static grid: one program per value, axis order from the keywords, NaN padding


def test_static_grid_gives_one_program_per_value(static_sweep):
    r = static_sweep
    assert len(r.programs) == 2
    assert [p["static"] for p in r.programs] == [{"num_envs": 2}, {"num_envs": 4}]
    assert r.axes == ("lr", "num_envs", "seed")
    assert r.grid == {"lr": [1e-3, 3e-3], "num_envs": [2, 4], "seed": [0, 1]}
    for name, value in r.metrics.items():
        assert value.shape == (2, 2, 2, 6), (name, value.shape)


def test_static_grid_pads_shorter_runs_with_nan(static_sweep):
    r = static_sweep
    # num_envs=4 ran 3 updates: the last 3 entries are padding
    assert np.isnan(r.metrics["loss"][:, 1, :, 3:]).all()
    assert np.isnan(r.metrics["env_steps"][:, 1, :, 3:]).all()
    assert np.isfinite(r.metrics["loss"][:, 1, :, :3]).all()
    # num_envs=2 ran all 6
    assert np.isfinite(r.metrics["loss"][:, 0]).all()
    np.testing.assert_array_equal(r.metrics["env_steps"][0, 0, 0], 32 * np.arange(1, 7))
    np.testing.assert_array_equal(r.metrics["env_steps"][0, 1, 0, :3], 64 * np.arange(1, 4))


def test_static_grid_entry_equals_train_alone(config, static_sweep, train_alone):
    r = static_sweep
    for i, lr in enumerate(r.grid["lr"]):
        for n, num_envs in enumerate(r.grid["num_envs"]):
            for k, seed in enumerate(r.grid["seed"]):
                cfg = config.replace(lr=lr, num_envs=num_envs)
                metrics, params = train_alone(cfg, seed)
                assert_metrics_match(r.metrics, metrics, (i, n, k), length=cfg.num_updates)
                program = r.programs[n]
                assert program["static"] == {"num_envs": num_envs}
                assert_params_match(program["state"].params, params, (i, k))


# make test-all: make test keeps the traced and static grid tests
@pytest.mark.slow
def test_axis_order_follows_keyword_order_and_explicit_seeds(config, static_sweep, train_alone):
    """Static field first this time, and an explicit seed list."""
    r = purejaxlib.sweep(ppo.train, config, seeds=[1], num_envs=[2, 4], lr=[1e-3, 3e-3])
    assert r.axes == ("num_envs", "lr", "seed")
    assert r.grid["seed"] == [1]
    assert r.metrics["loss"].shape == (2, 2, 1, 6)
    for n, num_envs in enumerate(r.grid["num_envs"]):
        for i, lr in enumerate(r.grid["lr"]):
            cfg = config.replace(lr=lr, num_envs=num_envs)
            metrics, _ = train_alone(cfg, 1)  # seed 1 is jax.random.key(1)
            assert_metrics_match(r.metrics, metrics, (n, i, 0), length=cfg.num_updates)
            # the same agent sits at the transposed index of the other sweep
            for name in EXACT:
                np.testing.assert_array_equal(r.metrics[name][n, i, 0], static_sweep.metrics[name][i, n, 1])


# ---------------------------------------------------------------------------------------------
# compile once across calls


class AnyCompile(logging.Handler):
    """Counts every backend compilation jax logs (``jax.log_compiles``), whatever the function."""

    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.names: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("Compiling"):
            self.names.append(message.split(" with ")[0])


def test_later_sweeps_reuse_the_executable_until_a_static_field_changes(config, count_compiles):
    cfg = config.replace(update_epochs=1)  # a program no other test compiles
    first = purejaxlib.sweep(ppo.train, cfg, seeds=2, lr=[1e-3, 3e-3])
    assert first.compile_seconds > 0
    counter = AnyCompile()
    logger = logging.getLogger("jax._src.interpreters.pxla")
    logger.addHandler(counter)
    try:
        with jax.log_compiles(True):
            second = purejaxlib.sweep(ppo.train, cfg, seeds=2, lr=[2e-3, 5e-3])  # new traced values
            third = purejaxlib.sweep(ppo.train, cfg, seeds=2, lr=[3e-3, 1e-3])  # the first grid, reversed
    finally:
        logger.removeHandler(counter)
    assert counter.names == [], counter.names
    assert second.compile_seconds == 0.0 and third.compile_seconds == 0.0
    # the reused program runs each call's values: the same values give the first call's numbers
    for name in first.metrics:
        np.testing.assert_array_equal(third.metrics[name][::-1], first.metrics[name], err_msg=name)
    assert not np.allclose(second.metrics["loss"], first.metrics["loss"])
    with count_compiles("train") as static_change:
        purejaxlib.sweep(ppo.train, cfg.replace(num_envs=2), seeds=2, lr=[2e-3, 5e-3])
    assert static_change.count == 1


# ---------------------------------------------------------------------------------------------
# sharded over 4 simulated CPU devices

SHARDED_CHILD = textwrap.dedent(
    """
    import json
    import jax
    import numpy as np
    import purejaxlib
    from purejaxlib.algos import ppo

    cfg = ppo.Config(env="CartPole-v1", total_timesteps=192, num_envs=4, num_steps=16,
                     num_minibatches=2, update_epochs=2)
    # 2 lr x 3 seeds = 6 agents: not divisible by 4 devices, so the batch is padded to 8.
    sharded = purejaxlib.sweep(ppo.train, cfg, seeds=3, lr=[1e-3, 3e-3])
    single = purejaxlib.sweep(ppo.train, cfg, seeds=3, lr=[1e-3, 3e-3], devices=[jax.devices()[0]])
    as_lists = lambda r: {k: np.asarray(v, np.float64).tolist() for k, v in r.metrics.items()}
    print("RESULT " + json.dumps({
        "device_count": jax.device_count(),
        "axes": list(sharded.axes),
        "sharded": as_lists(sharded),
        "single": as_lists(single),
        "sharded_params": [np.asarray(x).tolist() for x in jax.tree.leaves(sharded.programs[0]["state"].params)],
        "single_params": [np.asarray(x).tolist() for x in jax.tree.leaves(single.programs[0]["state"].params)],
    }))
    """
)


@pytest.mark.slow  # make test-all: tests/test_distributed.py shards a sweep over 4 devices in make test
def test_sharded_sweep_matches_single_device_sweep():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    try:
        proc = subprocess.run(
            [sys.executable, "-c", SHARDED_CHILD], env=env, capture_output=True, text=True, timeout=240
        )
    except subprocess.TimeoutExpired as err:
        pytest.fail(
            "the sharded sweep over 4 simulated CPU devices did not finish in 240 s (it hangs: "
            f"see the test report).\nstderr tail:\n{(err.stderr or b'')[-3000:]!r}"
        )
    assert proc.returncode == 0, proc.stderr[-5000:]
    line = next(row for row in proc.stdout.splitlines() if row.startswith("RESULT "))
    out = json.loads(line[len("RESULT ") :])
    assert out["device_count"] == 4
    assert out["axes"] == ["lr", "seed"]
    for name, single in out["single"].items():
        sharded = np.asarray(out["sharded"][name])
        single = np.asarray(single)
        assert sharded.shape == single.shape == (2, 3, UPDATES)
        if name in EXACT:
            np.testing.assert_array_equal(sharded, single, err_msg=name)
        else:
            np.testing.assert_allclose(sharded, single, rtol=1e-5, atol=1e-6, err_msg=name)
    for a, b in zip(out["sharded_params"], out["single_params"]):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# deadlock guard

# jaxlib 0.10's CPU LAPACK kernels (QR, Cholesky, eigh, ...) split a batched call into chunks on
# XLA:CPU's intra-op thread pool and block a pool thread until the chunks are done. When as many
# batched calls run at once as the pool has threads (its size is the number of cores), every
# thread blocks and the program never finishes. Under vmap, flax's orthogonal initializer's QR is
# such a batched call: with it, on the 2-core CI machine a single-device sweep hung at random (two
# independent layer QRs in one program) and the 4-device sharded sweep above hung every time.
# purejaxlib.networks therefore initializes without LAPACK; this test keeps it that way. jax
# 0.11.2 compiles the parallel path out, but needs Python >= 3.12.
JAXLIB_LAPACK_DEADLOCKS = jax.__version_info__ < (0, 11, 2)


def test_vmapped_training_program_has_no_lapack_calls_on_cpu(config):
    if jax.default_backend() != "cpu" or not JAXLIB_LAPACK_DEADLOCKS:
        pytest.skip("only jaxlib < 0.11.2 on CPU has the LAPACK batch deadlock")
    keys = jax.numpy.stack([jax.random.key(i) for i in range(4)])
    batch = jax.tree.map(lambda x: np.broadcast_to(x, (4,) + np.shape(x)), config)
    text = jax.jit(jax.vmap(ppo.train)).lower(batch, keys).as_text()
    calls = sorted({line.split("@")[1].split("(")[0] for line in text.splitlines() if "custom_call @lapack" in line})
    assert not calls, (
        f"the vmapped training program calls batched LAPACK kernels {calls}, which can deadlock "
        "XLA:CPU's thread pool on few-core machines with this jaxlib"
    )
