"""SAC / discrete SAC / TQC: soft TD targets against a plain numpy reference, the temperature's
direction, target entropies, determinism, sweeps, bad configs, and (slow) learning.

Non-learning tests use tiny sizes (16x16 networks, batches of 8, a 256-step buffer, 32 random
steps) and share compiled programs per module.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import purejaxlib
from purejaxlib import ConfigError, losses, replay
from purejaxlib.algos import sac
from purejaxlib.networks import ensemble_init

TINY = dict(hidden=(16, 16), batch_size=8, buffer_size=256, learning_starts=32)
GAMMA = 0.9


def tiny_config(env: str = "Pendulum-v1", total_timesteps: int = 96, **overrides) -> sac.Config:
    return sac.Config(env=env, total_timesteps=total_timesteps, **{**TINY, **overrides})


def _tree_equal(a, b) -> bool:
    leaves_a, tree_a = jax.tree.flatten(a)
    leaves_b, tree_b = jax.tree.flatten(b)
    return tree_a == tree_b and all(
        np.array_equal(np.asarray(x), np.asarray(y), equal_nan=True) for x, y in zip(leaves_a, leaves_b)
    )


# ---------------------------------------------------------------------------------------------
# A plain reference: numpy forward passes read straight from the flax parameters.


def mlp(params, x: np.ndarray) -> np.ndarray:
    """Dense -> relu -> ... -> Dense in float64, layers taken in order from ``params``."""
    tree = params["params"]
    while "Dense_0" not in tree:  # modules wrap an MLP_0
        (tree,) = tree.values()
    x = np.asarray(x, np.float64)
    count = len(tree)
    for i in range(count):
        layer = tree[f"Dense_{i}"]
        x = x @ np.asarray(layer["kernel"], np.float64) + np.asarray(layer["bias"], np.float64)
        if i < count - 1:
            x = np.maximum(x, 0.0)
    return x


def member(ensemble, n: int):
    return jax.tree.map(lambda x: x[n], ensemble)


STORED_STEPS = 6


def replay_batch(config: sac.Config, key: jax.Array, batch_size: int = 48):
    """A batch sampled by the replay buffer from 6 stored steps of one env, one of them
    terminated (step 1) and one truncated (step 3), with the stored rows for the reference."""
    obs_dim = int(np.prod(config.spec.obs_shape))
    k_obs, k_next, k_rew, k_act, k_sample = jax.random.split(key, 5)
    obs = jax.random.normal(k_obs, (STORED_STEPS, 1, obs_dim))
    next_obs = jax.random.normal(k_next, (STORED_STEPS, 1, obs_dim))
    reward = jax.random.normal(k_rew, (STORED_STEPS, 1))
    if config.spec.discrete:
        action = jax.random.randint(k_act, (STORED_STEPS, 1), 0, config.action_dim)
    else:
        action = jax.random.uniform(k_act, (STORED_STEPS, 1, config.action_dim), minval=-1, maxval=1)
    terminated = jnp.zeros((STORED_STEPS, 1), bool).at[1].set(True)
    truncated = jnp.zeros((STORED_STEPS, 1), bool).at[3].set(True)
    rows = replay.Stored(obs, action, reward, terminated, truncated, next_obs)
    buffer = replay.add(replay.init(jax.tree.map(lambda x: x[0], rows), STORED_STEPS), rows)
    batch = replay.sample(buffer, k_sample, batch_size, config.gamma, 1)
    # which stored step each sampled transition is (observations are distinct)
    index = np.asarray([np.argmin(np.abs(np.asarray(obs[:, 0]) - np.asarray(o)).sum(-1)) for o in batch.obs])
    np.testing.assert_array_equal(np.asarray(batch.obs), np.asarray(obs[index, 0]))
    assert {1, 3} <= set(index.tolist()), "the batch should hold the terminated and the truncated step"
    stored = {
        "reward": np.asarray(reward[index, 0], np.float64),
        "terminated": np.asarray(terminated[index, 0]),
        "next_obs": np.asarray(next_obs[index, 0], np.float64),
    }
    return batch, stored


def learner_with_distinct_target(config: sac.Config, key: jax.Array, alpha: float = 0.3) -> sac.Learner:
    """A learner whose target critics differ from the online ones and whose alpha is not 1."""
    obs_dim = int(np.prod(config.spec.obs_shape))
    init_key, target_key = jax.random.split(key)
    learner = sac.init_learner(config, init_key, jnp.zeros((1, obs_dim)))
    inputs = (
        (jnp.zeros((1, obs_dim)),)
        if config.spec.discrete
        else (jnp.zeros((1, obs_dim)), jnp.zeros((1, config.action_dim)))
    )
    target = ensemble_init(sac.make_critic(config), target_key, config.num_critics, *inputs)
    return learner._replace(target_critic=target, log_alpha=jnp.log(jnp.float32(alpha)))


def reference_continuous_next(config: sac.Config, learner: sac.Learner, next_obs: np.ndarray, key: jax.Array):
    """Target critics' outputs ``[N, B(, M)]`` at a tanh-Gaussian action for next_obs, and its log-prob.

    The action is drawn with losses.tanh_gaussian (tested against distrax and a numerical change of
    variables in test_losses.py) from the reference actor's mean and clipped log-std, with the
    same key critic_target is given."""
    out = mlp(learner.actor, next_obs)
    mean, log_std = out[:, : config.action_dim], np.clip(out[:, config.action_dim :], -5.0, 2.0)
    action, log_prob = losses.tanh_gaussian(key, jnp.asarray(mean, jnp.float32), jnp.asarray(log_std, jnp.float32))
    action, log_prob = np.asarray(action, np.float64), np.asarray(log_prob, np.float64)
    x = np.concatenate([next_obs, action], axis=-1)
    q = np.stack([mlp(member(learner.target_critic, n), x) for n in range(config.num_critics)])
    return (q[..., 0] if not config.num_quantiles else q), log_prob


# ---------------------------------------------------------------------------------------------
# critic targets


def test_continuous_target_matches_reference():
    config = tiny_config(gamma=GAMMA)
    learner = learner_with_distinct_target(config, jax.random.key(1))
    batch, stored = replay_batch(config, jax.random.key(2))
    key = jax.random.key(3)
    got = np.asarray(jax.jit(sac.critic_target)(config, learner, batch, key))

    q, log_prob = reference_continuous_next(config, learner, stored["next_obs"], key)
    alpha = 0.3
    assert len(set(np.argmin(q, axis=0).tolist())) == 2, "both critics should be the minimum somewhere"
    expected = np.empty(len(got))
    for b in range(len(got)):
        if stored["terminated"][b]:
            expected[b] = stored["reward"][b]  # no future after a termination
        else:  # running on, or truncated by the time limit: bootstrap from the true successor
            expected[b] = stored["reward"][b] + GAMMA * (min(q[0, b], q[1, b]) - alpha * log_prob[b])
    assert got.shape == (len(got),)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_continuous_target_sample_depends_on_key():
    config = tiny_config(gamma=GAMMA)
    learner = learner_with_distinct_target(config, jax.random.key(1))
    batch, stored = replay_batch(config, jax.random.key(2))
    a = np.asarray(jax.jit(sac.critic_target)(config, learner, batch, jax.random.key(3)))
    b = np.asarray(jax.jit(sac.critic_target)(config, learner, batch, jax.random.key(4)))
    alive = ~stored["terminated"]
    assert not np.allclose(a[alive], b[alive])
    np.testing.assert_array_equal(a[~alive], b[~alive])  # terminal targets are just the reward


def test_discrete_target_is_the_expectation_over_action_probabilities():
    config = tiny_config("Acrobot-v1", gamma=GAMMA)  # 3 actions
    learner = learner_with_distinct_target(config, jax.random.key(5), alpha=0.7)
    batch, stored = replay_batch(config, jax.random.key(6))
    got = np.asarray(jax.jit(sac.critic_target)(config, learner, batch, jax.random.key(7)))

    logits = mlp(learner.actor, stored["next_obs"])
    q = np.stack([mlp(member(learner.target_critic, n), stored["next_obs"]) for n in range(2)])  # [2, B, 3]
    assert len(set(np.argmin(q, axis=0).ravel().tolist())) == 2, "both critics should be the minimum somewhere"
    expected = np.empty(len(got))
    for b in range(len(got)):
        probs = np.exp(logits[b] - logits[b].max())
        probs /= probs.sum()
        value = sum(probs[a] * (min(q[0, b, a], q[1, b, a]) - 0.7 * math.log(probs[a])) for a in range(3))
        expected[b] = stored["reward"][b] + (0.0 if stored["terminated"][b] else GAMMA * value)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_tqc_target_atoms_match_reference():
    """3 critics x 5 quantiles pooled, sorted, the 3 x 2 largest dropped: 9 atoms per transition,
    each shifted by the entropy term and discounted."""
    config = tiny_config(gamma=GAMMA, num_critics=3, num_quantiles=5, drop_quantiles=2)
    learner = learner_with_distinct_target(config, jax.random.key(8))
    batch, stored = replay_batch(config, jax.random.key(9))
    key = jax.random.key(10)
    got = np.asarray(jax.jit(sac.critic_target)(config, learner, batch, key))
    assert got.shape == (len(stored["reward"]), 9)

    q, log_prob = reference_continuous_next(config, learner, stored["next_obs"], key)  # [3, B, 5]
    for b in range(got.shape[0]):
        atoms = sorted(q[:, b].ravel())[:9]
        future = 0.0 if stored["terminated"][b] else GAMMA
        expected = [stored["reward"][b] + future * (z - 0.3 * log_prob[b]) for z in atoms]
        np.testing.assert_allclose(got[b], expected, rtol=1e-5, atol=1e-5)


def test_tqc_critic_loss_is_the_quantile_loss_summed_over_critics():
    config = tiny_config(num_critics=3, num_quantiles=5, drop_quantiles=2)
    learner = learner_with_distinct_target(config, jax.random.key(8))
    batch, _ = replay_batch(config, jax.random.key(9))
    target = jax.jit(sac.critic_target)(config, learner, batch, jax.random.key(10))
    loss, _ = sac.critic_loss(config, learner.critic, target, batch)
    x = np.concatenate([np.asarray(batch.obs), np.asarray(batch.action)], axis=-1)
    expected = sum(
        float(losses.quantile_huber_loss(jnp.asarray(mlp(member(learner.critic, n), x), jnp.float32), target))
        for n in range(3)
    )
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# temperature


@pytest.mark.parametrize(
    "env,scale,expected",
    [
        ("Pendulum-v1", -1.0, -1.0),  # auto: -|A|
        ("Reacher-misc", -1.0, -2.0),
        ("Reacher-misc", 0.5, -1.0),  # explicit: scale * -|A|
        ("CartPole-v1", -1.0, sac.DISCRETE_AUTO_ENTROPY * math.log(2)),  # auto: a fraction of log|A|
        ("Acrobot-v1", -1.0, sac.DISCRETE_AUTO_ENTROPY * math.log(3)),
        ("Acrobot-v1", 0.8, 0.8 * math.log(3)),
    ],
)
def test_target_entropy(env, scale, expected):
    config = tiny_config(env, target_entropy_scale=scale)
    assert float(sac.target_entropy(config)) == pytest.approx(expected, rel=1e-6)


def test_discrete_auto_target_entropy_lies_below_the_maximum():
    assert 0.0 < sac.DISCRETE_AUTO_ENTROPY < 1.0


def _with_actor_output(learner: sac.Learner, bias: np.ndarray) -> sac.Learner:
    """The actor's last layer made constant: every state gets the output ``bias``."""
    params = jax.tree.map(lambda x: x, learner.actor)
    tree = params["params"]
    while "Dense_0" not in tree:
        (tree,) = tree.values()
    last = f"Dense_{len(tree) - 1}"
    tree[last] = {"kernel": jnp.zeros_like(tree[last]["kernel"]), "bias": jnp.asarray(bias, jnp.float32)}
    return learner._replace(actor=params)


@pytest.mark.parametrize(
    "env,output,rises",
    [
        # tanh(N(0, e^-4)): entropy about 1.42 - 4 = -2.6, below the target -1
        ("Pendulum-v1", [0.0, -4.0], True),
        # tanh(N(0, 1)): entropy about 0.55 (near the maximum log 2 of the uniform), above -1
        ("Pendulum-v1", [0.0, 0.0], False),
        # nearly deterministic over 2 actions: entropy ~0, below 0.5 log 2
        ("CartPole-v1", [6.0, -6.0], True),
        # uniform: entropy log 2, above 0.5 log 2
        ("CartPole-v1", [0.0, 0.0], False),
    ],
)
def test_temperature_rises_when_entropy_is_below_target(env, output, rises):
    config = tiny_config(env)
    learner = learner_with_distinct_target(config, jax.random.key(0), alpha=0.5)
    learner = _with_actor_output(learner, np.asarray(output))
    batch, _ = replay_batch(config, jax.random.key(1), batch_size=8)
    new, metrics = jax.jit(sac.update)(config, learner, batch, jax.random.key(2), 1)
    entropy, target = float(metrics["entropy"]), float(sac.target_entropy(config))
    assert (entropy < target) == rises, (entropy, target)
    moved = float(new.log_alpha) - float(learner.log_alpha)
    assert (moved > 0) == rises and moved != 0.0, moved
    assert float(metrics["alpha"]) == pytest.approx(math.exp(float(new.log_alpha)))
    # the loss itself: d/d(log alpha) = entropy - target
    grad = jax.grad(sac.alpha_loss, argnums=1)(config, jnp.float32(0.0), jnp.full((8,), entropy))
    assert float(grad) == pytest.approx(entropy - target, rel=1e-5)


def test_fixed_temperature_does_not_move():
    config = tiny_config(autotune_alpha=False, alpha_init=0.2)
    learner = sac.init_learner(config, jax.random.key(0), jnp.zeros((1, 3)))
    assert float(learner.log_alpha) == pytest.approx(math.log(0.2))
    batch, _ = replay_batch(config, jax.random.key(1), batch_size=8)
    new, metrics = jax.jit(sac.update)(config, learner, batch, jax.random.key(2), 1)
    assert float(new.log_alpha) == float(learner.log_alpha)
    assert float(metrics["alpha"]) == pytest.approx(0.2)


def test_update_moves_targets_by_tau():
    config = tiny_config(tau=0.25)
    learner = learner_with_distinct_target(config, jax.random.key(0))
    batch, _ = replay_batch(config, jax.random.key(1), batch_size=8)
    new, _ = jax.jit(sac.update)(config, learner, batch, jax.random.key(2), 1)
    for old_t, new_t, online in zip(
        *(jax.tree.leaves(t) for t in (learner.target_critic, new.target_critic, new.critic))
    ):
        np.testing.assert_allclose(
            np.asarray(new_t), np.asarray(old_t) + 0.25 * (np.asarray(online) - np.asarray(old_t)), rtol=1e-5, atol=1e-6
        )


# ---------------------------------------------------------------------------------------------
# training program: shapes, determinism, sweeps


@pytest.fixture(scope="module")
def config():
    return tiny_config("Pendulum-v1", total_timesteps=96)  # 32 random steps, then 64 updates


@pytest.fixture(scope="module")
def train_fn():
    return jax.jit(sac.train)


@pytest.fixture(scope="module")
def first_run(config, train_fn):
    return jax.block_until_ready(train_fn(config, jax.random.key(0)))


def test_train_metrics(config, first_run):
    metrics = first_run.metrics
    assert {"episode_return", "critic_loss", "actor_loss", "alpha", "entropy", "q_mean", "env_steps"} <= set(metrics)
    for name, value in metrics.items():
        assert value.shape == (96,), name
    np.testing.assert_array_equal(metrics["env_steps"], np.arange(1, 97))
    # no learning during the 32 random steps, finite afterwards
    assert np.isnan(metrics["critic_loss"][:32]).all() and np.isfinite(metrics["critic_loss"][32:]).all()
    assert np.isfinite(metrics["alpha"][32:]).all()
    assert int(first_run.state.buffer.size) == 96


@pytest.mark.parametrize(
    "env,overrides",
    [("CartPole-v1", {}), ("Pendulum-v1", dict(num_quantiles=5, drop_quantiles=1))],
    ids=["discrete", "tqc"],
)
def test_variants_train(env, overrides):
    config = tiny_config(env, **overrides)
    metrics = jax.jit(sac.train)(config, jax.random.key(0)).metrics
    for name in ("critic_loss", "actor_loss", "alpha", "entropy", "q_mean"):
        assert np.isfinite(metrics[name][32:]).all(), name


# ---------------------------------------------------------------------------------------------
# bad input: ConfigError at construction, before anything is traced


def _error(**fields) -> str:
    with pytest.raises(ConfigError) as info:
        sac.Config(**{**TINY, "total_timesteps": 500, **fields})
    return str(info.value)


def test_tqc_on_discrete_env():
    message = _error(env="CartPole-v1", num_quantiles=25)
    assert "num_quantiles" in message and "continuous" in message


@pytest.mark.parametrize("drop", [5, 6])
def test_dropping_every_quantile(drop):
    message = _error(env="Pendulum-v1", num_quantiles=5, drop_quantiles=drop)
    assert "drop_quantiles" in message and str(drop) in message


def test_buffer_smaller_than_a_batch():
    message = _error(env="Pendulum-v1", buffer_size=100, batch_size=128)
    assert "buffer_size" in message and "128" in message


@pytest.mark.parametrize("starts", [500, 600])
def test_learning_starts_past_the_run(starts):
    message = _error(env="Pendulum-v1", learning_starts=starts)
    assert "learning_starts" in message and "500" in message


@pytest.mark.parametrize("fields,name", [(dict(alpha_init=0.0), "alpha_init"), (dict(num_critics=0), "num_critics")])
def test_non_positive_fields(fields, name):
    assert name in _error(env="Pendulum-v1", **fields)


def test_bad_sweep_values_fail_before_tracing():
    traced = []

    def spy(cfg, key):
        traced.append(1)
        return sac.train(cfg, key)

    base = tiny_config("Pendulum-v1", num_quantiles=5, drop_quantiles=1)
    with pytest.raises(ConfigError, match="drop_quantiles"):
        purejaxlib.sweep(spy, base, seeds=1, drop_quantiles=[1, 5])
    with pytest.raises(ConfigError, match="alpha_init"):
        purejaxlib.sweep(spy, base, seeds=1, alpha_init=[0.5, -1.0])
    assert traced == []


# ---------------------------------------------------------------------------------------------
# learning (slow): 4 seeds vmapped in one program per test, keys split from jax.random.key(0)


def train_seeds(algo, config, seeds: int = 4, base: int = 0) -> dict[str, np.ndarray]:
    """``jax.jit(jax.vmap(train))`` over keys split from ``key(base)``: metrics ``[seed, iteration]``."""
    keys = jax.random.split(jax.random.key(base), seeds)
    metrics = jax.jit(jax.vmap(lambda k: algo.train(config, k).metrics))(keys)
    return jax.tree.map(np.asarray, metrics)


def final_returns(metrics: dict[str, np.ndarray], episodes: int = 5) -> np.ndarray:
    """Per seed: the mean return of its last ``episodes`` episodes (one env, so each iteration
    where an episode ended holds exactly that episode's return). Averaging a few episodes keeps
    one unlucky start state (Pendulum) from deciding the outcome."""
    out = []
    for returns, ended in zip(metrics["episode_return"], metrics["episodes"] > 0):
        assert ended.sum() >= episodes
        out.append(returns[ended][-episodes:].mean())
    return np.asarray(out)


# Pendulum-v1: 200-step episodes; returns lie in about [-1600, 0]. Uniformly random torques score
# about -1200 (see test_learning.random_policy_return); a policy that swings up and balances
# scores -100 to -250 depending on the start state (about -150 on average). -250 on the mean of
# 4 seeds' last 5 episodes needs nearly every episode swung up and held. Small networks, a fast
# target (tau 0.02) and lr 1e-3 learn it in about 5k steps: 8k steps leave a margin.
PENDULUM = dict(env="Pendulum-v1", total_timesteps=8_000, hidden=(64, 64), lr=1e-3, tau=0.02)


def _check_pendulum(metrics, label):
    final = final_returns(metrics)
    first = metrics["episode_return"][:, 199]  # the first episode: random actions
    print(
        f"{label} Pendulum-v1: last-5-episode mean per seed {final.round(1)}, mean {final.mean():.1f}; "
        f"last episode per seed {metrics['episode_return'][:, -1].round(1)}; first episode {first.round(0)}"
    )
    assert np.all(first < -700), first
    assert final.mean() >= -250, f"mean {final.mean():.1f}, per seed {final}"


@pytest.mark.learning
def test_sac_learns_pendulum():
    _check_pendulum(train_seeds(sac, sac.Config(**PENDULUM)), "SAC")


@pytest.mark.slow
def test_tqc_learns_pendulum():
    """TQC with 2 critics x 10 quantiles, the top 1 per critic dropped (the quantile loss and the
    sort cost more on CPU than the 64x64 networks, hence the smaller batch)."""
    config = sac.Config(**PENDULUM, num_critics=2, num_quantiles=10, drop_quantiles=1, batch_size=128)
    _check_pendulum(train_seeds(sac, config), "TQC")


@pytest.mark.slow
def test_discrete_sac_learns_cartpole():
    """CartPole-v1 pays 1 per step up to 500; uniformly random actions last about 22 steps. 300 on
    the mean of 4 seeds' last 5 episodes after 15k steps is over ten times random and needs most
    episodes balanced for hundreds of steps (measured margins: benchmarks/README.md)."""
    config = sac.Config(env="CartPole-v1", total_timesteps=15_000, hidden=(64, 64), lr=1e-3, tau=0.02)
    metrics = train_seeds(sac, config)
    final = final_returns(metrics)
    print(f"discrete SAC CartPole-v1: last-5-episode mean per seed {final.round(1)}, mean {final.mean():.1f}")
    assert np.nanmean(metrics["episode_return"][:, 999]) < 50  # after the random warm-up
    assert final.mean() >= 300, f"mean {final.mean():.1f}, per seed {final}"
