"""AlphaZero through the run engine: a sweep equals the chunked, checkpointed run, and a run resumed from a
mid-run checkpoint ends bitwise equal to the run that never stopped (replay, pending games and
the self-play games in progress all go through the checkpoint)."""

from __future__ import annotations

import shutil

import jax
import numpy as np
import pytest

pytest.importorskip("pgx", reason="pgx and mctx (Python >= 3.11) are the optional extra games")

import purejaxlib
from purejaxlib.algos import alphazero
from purejaxlib.checkpoint import to_host
from purejaxlib.runner import load_state, run_experiment

TINY = dict(
    game="pgx/tic_tac_toe", num_envs=8, num_steps=4, num_simulations=4, max_num_considered_actions=4,
    buffer_size=256, batch_size=16, gradient_steps=2, hidden=(16,), total_timesteps=8 * 4 * 6,
)  # fmt: skip


def _final(run_dir, config):
    batch = jax.tree.map(lambda x: np.broadcast_to(x, (2,) + np.shape(x)), config)
    like = jax.eval_shape(jax.vmap(alphazero.init), batch, jax.random.split(jax.random.key(0), 2))
    return to_host(load_state(run_dir, like)[1])


@pytest.mark.slow  # make test-all: make test keeps AlphaZero's determinism and learning tests (test_alphazero.py)
def test_sweep_member_equals_its_run_and_a_resumed_run_is_bitwise_the_whole_run(tmp_path):
    config = alphazero.Config(**TINY)
    swept = purejaxlib.sweep(alphazero.train, config, seeds=2)
    run = lambda out, **kw: run_experiment(alphazero, config, seeds=2, out=out, checkpoint_every=2, **kw)
    whole_run = run(tmp_path / "whole", progress_bar=False)  # in chunks of 2 updates, seeds vmapped
    for name, value in swept.metrics.items():
        np.testing.assert_allclose(whole_run.metrics[name], value, rtol=1e-5, atol=1e-6, err_msg=name)

    shutil.copytree(tmp_path / "whole", tmp_path / "cut")
    for step in (4, 6):  # as if killed after update 2
        shutil.rmtree(tmp_path / "cut" / "checkpoints" / "program-0" / str(step))
    resumed = run(tmp_path / "cut", resume=True, progress_bar=False)
    assert resumed.record["sessions"][-1]["resumed_from"] == {"0": 2}
    whole, cut = jax.tree.leaves(_final(tmp_path / "whole", config)), jax.tree.leaves(_final(tmp_path / "cut", config))
    assert len(whole) == len(cut)
    for a, b in zip(whole, cut):
        assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)
