"""purejaxlib.tune: PBT's exploit and explore on hand-built populations, halving's rungs, the
seed split, bad spaces named, and a killed tuning run resumed bitwise. The tiny runs check the
machinery, not that tuning helps (benchmarks/tune.py measures that)."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
from conftest import SMALL, key_data, tree_equal

from purejaxlib import ConfigError, tune
from purejaxlib.algos import ppo

SPACE = {"lr": tune.LogUniform(1e-4, 1e-2), "ent_coef": tune.Uniform(0.0, 0.05)}
BASE = ppo.Config(env="CartPole-v1", hidden=(16, 16), **SMALL)  # 64 env steps per update
TEST_SEEDS = (7, 8, 9, 10)  # as many as the population: the test runs reuse the tuning's compiled programs


def test_pbt_pairs_copy_the_best_onto_the_worst():
    scores = [5.0, 1.0, 8.0, 3.0, 7.0, 2.0, 6.0, 4.0]
    for seed in range(20):
        pairs = tune.pbt_pairs(scores, 0.25, np.random.default_rng(seed))
        assert set(pairs) == {1, 5}  # the two worst
        assert set(pairs.values()) <= {2, 4}  # each from the two best
    assert tune.pbt_pairs([1.0, 2.0, 3.0], 0.1, np.random.default_rng(0)) == {0: 2}  # at least one
    assert len(tune.pbt_pairs(list(range(10)), 0.5, np.random.default_rng(0))) == 5  # at most half


def test_explore_perturbs_within_bounds_and_resamples():
    space = {
        "lr": tune.LogUniform(1e-4, 1e-2),
        "clip_eps": tune.Uniform(0.1, 0.3),
        "gamma": tune.Choice((0.9, 0.95, 0.99)),
    }
    rng = np.random.default_rng(0)
    start = {"lr": 1e-3, "clip_eps": 0.29, "gamma": 0.95}
    seen_lr, seen_clip = set(), set()
    for _ in range(50):
        out = tune.explore(start, space, rng, perturb=(0.8, 1.25), resample_prob=0.0)
        seen_lr.add(round(out["lr"] / 1e-3, 6))
        seen_clip.add(round(out["clip_eps"], 6))
        assert out["gamma"] in (0.9, 0.99)  # a neighbouring value
    assert seen_lr == {0.8, 1.25}
    assert seen_clip == {round(0.29 * 0.8, 6), 0.3}  # 0.29 * 1.25 clipped to the bound
    for _ in range(50):
        out = tune.explore(start, space, rng, perturb=(0.8, 1.25), resample_prob=1.0)
        assert 1e-4 <= out["lr"] <= 1e-2 and 0.1 <= out["clip_eps"] <= 0.3 and out["gamma"] in space["gamma"].values


def test_copy_takes_the_winners_state_but_keeps_the_losers_key():
    init = jax.jit(ppo.init)
    winner, loser = init(BASE, jax.random.key(1)), init(BASE, jax.random.key(2))
    copy = tune.copy_state(winner, loser)
    assert tree_equal(jax.random.key_data(copy.key), jax.random.key_data(loser.key))
    assert tree_equal(copy.params, winner.params) and tree_equal(copy.opt_state, winner.opt_state)
    assert tree_equal(copy.obs, winner.obs)


def test_halving_rungs_and_budget():
    members, lengths = tune.halving_plan(8, 2, 1000)
    assert members == [8, 4, 2, 1]
    u0 = lengths[0]
    assert lengths == [u0, u0, 2 * u0, 4 * u0]
    assert sum(m * u for m, u in zip(members, lengths)) <= 1000
    assert sum(m * u for m, u in zip(members, lengths)) > 1000 - sum(members) * 8  # u0 as large as fits
    assert tune.halving_plan(9, 3, 10_000)[0] == [9, 3, 1]
    with pytest.raises(ConfigError, match="too small"):
        tune.halving_plan(8, 2, 10)


@pytest.fixture(scope="module")
def pbt_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("pbt")
    result = tune.tune(
        ppo, BASE, SPACE, budget=4 * 6 * 64, method="pbt", population=4, chunks=3, tune_seeds=(0, 1),
        test_seeds=TEST_SEEDS, eval_episodes=2, out=out, progress_bar=False,
    )  # fmt: skip
    return result, out


def test_pbt_trace_follows_exploit_and_explore(pbt_run):
    result, out = pbt_run
    assert result.record["chunk_updates"] == [2, 2, 2] and result.updates == 6
    assert result.env_steps == 4 * 6 * 64
    by = {(r["member"], r["chunk"]): r for r in result.trace}
    assert len(by) == 4 * 3
    for c in range(2):
        scores = {m: by[(m, c)]["score"] for m in range(4)}
        copied = {m: by[(m, c)]["copied_from"] for m in range(4) if by[(m, c)]["copied_from"] is not None}
        assert len(copied) == 1  # ceil(0.25 * 4)
        ((loser, winner),) = copied.items()
        assert scores[loser] == min(scores.values()) and scores[winner] == max(scores.values())
        before, after = by[(winner, c)]["hyperparameters"], by[(loser, c + 1)]["hyperparameters"]
        for name, dist in SPACE.items():  # perturbed or resampled, within bounds
            assert dist.low <= after[name] <= dist.high
        untouched = [m for m in range(4) if m != loser]
        for m in untouched:
            assert by[(m, c + 1)]["hyperparameters"] == by[(m, c)]["hyperparameters"]
        assert after != before
    # the incumbent's schedule is its lineage's hyperparameters, chunk by chunk
    assert len(result.schedule) == 3 and result.schedule[-1] == result.incumbent
    assert result.test["seeds"] == list(TEST_SEEDS) and len(result.test["returns"]) == 4
    assert result.default_test is not None and len(result.default_test["returns"]) == 4
    lines = (out / tune.TRACE).read_text().splitlines()
    assert [json.loads(line) for line in lines] == result.trace
    saved = json.loads((out / tune.RESULT).read_text())
    assert saved["incumbent"] == result.incumbent


def test_killed_tuning_resumes_bitwise(pbt_run, tmp_path, monkeypatch):
    result, out = pbt_run
    real = tune.train_chunk
    calls = []

    def dies_in_third_chunk(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    kwargs = dict(
        budget=4 * 6 * 64, method="pbt", population=4, chunks=3, tune_seeds=(0, 1), test_seeds=TEST_SEEDS,
        eval_episodes=2, out=tmp_path, progress_bar=False,
    )  # fmt: skip
    monkeypatch.setattr(tune, "train_chunk", dies_in_third_chunk)
    with pytest.raises(KeyboardInterrupt):
        tune.tune(ppo, BASE, SPACE, **kwargs)
    monkeypatch.setattr(tune, "train_chunk", real)
    with pytest.raises(ConfigError, match="resume=True"):
        tune.tune(ppo, BASE, SPACE, **kwargs)
    with pytest.raises(ConfigError, match=r"\(config differ\)"):
        tune.tune(ppo, BASE.replace(gamma=0.9), SPACE, resume=True, **kwargs)
    resumed = tune.tune(ppo, BASE, SPACE, resume=True, **kwargs)
    assert resumed.trace == result.trace
    assert resumed.incumbent == result.incumbent and resumed.test == result.test
    from purejaxlib.checkpoint import Checkpoints

    like = [jax.eval_shape(ppo.init, BASE.replace(total_timesteps=6 * 64, **v), jax.random.key(0)) for v in
            [r["hyperparameters"] for r in result.trace if r["chunk"] == 2]]  # fmt: skip
    states = []
    for d in (out, tmp_path):
        ckpt = Checkpoints(d / "checkpoints")
        step, state, _ = ckpt.restore_latest(like)
        ckpt.close()
        states.append(state)
        assert step == 3
    assert tree_equal(key_data(states[0]), key_data(states[1]))


@pytest.mark.slow  # halving_plan's unit test stays in make test
def test_halving_keeps_the_best_per_rung():
    result = tune.tune(
        ppo, BASE, SPACE, budget=8 * 2 * 64 * 3, method="halving", population=8, tune_seeds=(0,), test_seeds=(5,),
        eval_episodes=2, compare_default=False, progress_bar=False,
    )  # fmt: skip
    counts = [len([r for r in result.trace if r["chunk"] == c]) for c in range(4)]
    assert counts == [8, 4, 2, 1]
    for c in range(3):
        rung = sorted((r for r in result.trace if r["chunk"] == c), key=lambda r: (-r["score"], r["member"]))
        survivors = {r["member"] for r in result.trace if r["chunk"] == c + 1}
        assert survivors == {r["member"] for r in rung[: counts[c + 1]]}
    assert result.default_test is None


@pytest.mark.parametrize(
    "space, method, match",
    [
        ({}, "random", "space is empty"),
        ({"learning_rate": tune.LogUniform(1e-4, 1e-2)}, "random", "'learning_rate'.*no such field"),
        ({"lr": tune.LogUniform(0.0, 1e-2)}, "random", "'lr'.*0 < low"),
        ({"lr": tune.Uniform(1e-2, 1e-4)}, "random", "'lr'.*low < high"),
        ({"gamma": tune.Uniform(0.9, 1.5)}, "random", "'gamma' value 1.5 is refused"),
        ({"hidden": tune.Uniform(16, 64)}, "random", "'hidden' is static.*Choice"),
        ({"hidden": tune.Choice(((16,), (32,)))}, "pbt", "'hidden' is static.*PBT"),
        ({"num_envs": tune.Choice((4, 8))}, "halving", "'num_envs'.*changes the env steps"),
        ({"lr": (1e-4, 1e-2)}, "random", "'lr' must be tune.LogUniform"),
    ],
)
def test_bad_spaces_are_named(space, method, match):
    with pytest.raises(ConfigError, match=match):
        tune.tune(ppo, BASE, space, budget=10**6, method=method)


def test_seed_sets_never_overlap_and_bad_arguments_are_named():
    with pytest.raises(ConfigError, match=r"seeds \[3\] are in both"):
        tune.tune(ppo, BASE, SPACE, budget=10**6, tune_seeds=(1, 2, 3), test_seeds=(3, 4))
    with pytest.raises(ConfigError, match="method"):
        tune.tune(ppo, BASE, SPACE, budget=10**6, method="bayes")
    with pytest.raises(ConfigError, match="less than one update"):
        tune.tune(ppo, BASE, SPACE, budget=100, population=4)


def test_random_search_scores_only_the_last_chunk(pbt_run):
    """Random search decides nothing between chunks, so it plays no episodes there (the fixture's
    programs are reused: same members, chunk lengths and config)."""
    result = tune.tune(
        ppo, BASE, SPACE, budget=4 * 6 * 64, method="random", population=4, chunks=3, tune_seeds=(0, 1),
        test_seeds=TEST_SEEDS, eval_episodes=2, compare_default=False, progress_bar=False,
    )  # fmt: skip
    assert [r["score"] for r in result.trace if r["chunk"] < 2] == [None] * 8
    last = [r for r in result.trace if r["chunk"] == 2]
    assert len(last) == 4 and all(isinstance(r["score"], float) for r in last)
    assert result.score == max(r["score"] for r in last)
    assert all(r["hyperparameters"] == result.trace[r["member"]]["hyperparameters"] for r in last)  # never change
