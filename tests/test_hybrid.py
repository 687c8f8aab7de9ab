"""Online learning with offline data: RLPD's pieces (symmetric sampling from a dataset and the
replay buffer, the random-subset minimum of the critic ensemble, the actor on the ensemble mean),
checked against plain references, and the bad input they refuse."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxlib import offline, offpolicy, replay
from purejaxlib.algos import iql, ppo, sac, td3
from purejaxlib.config import ConfigError
from purejaxlib.networks import ensemble_init

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

MARK = 100.0  # reward of every dataset transition; the env's rewards are never positive


@pytest.fixture(scope="module")
def pendulum_file(tmp_path_factory) -> str:
    """400 random Pendulum transitions whose rewards are all MARK, saved to disk."""
    data = offline.collect("Pendulum-v1", offline.behaviour("Pendulum-v1", None), jax.random.key(1), 400, 4)
    data = data.replace(reward=np.full(len(data), MARK, np.float32))
    return str(offline.save(data, tmp_path_factory.mktemp("prior") / "pendulum"))


@pytest.fixture(scope="module")
def cartpole_file(tmp_path_factory) -> str:
    data = offline.collect("CartPole-v1", offline.behaviour("CartPole-v1", None), jax.random.key(2), 200, 4)
    return str(offline.save(data, tmp_path_factory.mktemp("prior") / "cartpole"))


def online_buffer(config: sac.Config, key: jax.Array, rows: int = 50) -> replay.Buffer:
    """A replay buffer of ``rows`` random Pendulum-shaped steps of one env, rewards -1."""
    obs_key, act_key = jax.random.split(key)
    obs = jax.random.normal(obs_key, (rows, 1, 3))
    action = jax.random.uniform(act_key, (rows, 1, 1), minval=-1, maxval=1)
    flag = jnp.zeros((rows, 1), bool)
    stored = replay.Stored(obs, action, -jnp.ones((rows, 1)), flag, flag.at[rows // 2].set(True), obs + 1)
    return replay.add(replay.init(jax.tree.map(lambda x: x[0], stored), config.buffer_rows), stored)


@pytest.mark.parametrize("fraction,batch,n_step", [(0.5, 64, 1), (0.25, 40, 1), (0.75, 32, 3)])
def test_symmetric_sampling_draws_the_stated_share_from_each_source(pendulum_file, fraction, batch, n_step):
    config = sac.Config(
        env="Pendulum-v1", prior_data=pendulum_file, prior_fraction=fraction, batch_size=batch,
        n_step=n_step, total_timesteps=2_000, buffer_size=1_000,
    )  # fmt: skip
    buffer = online_buffer(config, jax.random.key(0))
    data = offline.load(pendulum_file)
    prior_obs = np.asarray(data.obs)
    want = round(batch * fraction)
    assert config.prior_batch == want
    for seed in range(3):
        got = jax.jit(offpolicy.sample_batch)(config, buffer, jax.random.key(seed))
        assert got.obs.shape == (batch, 3) and got.next_action is None
        reward = np.asarray(got.reward)
        # n-step sums of MARK are positive, of -1 negative: the first `want` rows came from the data
        assert (reward[:want] >= MARK).all() and (reward[want:] < 0).all()
        # ... and each prior row is one of the dataset's transitions, each online row one of the buffer's
        gap = np.abs(np.asarray(got.obs[:want])[:, None] - prior_obs[None]).sum(-1).min(1)
        assert gap.max() < 1e-6
        online_obs = np.asarray(buffer.data.obs[: int(buffer.size), 0])
        gap = np.abs(np.asarray(got.obs[want:])[:, None] - online_obs[None]).sum(-1).min(1)
        assert gap.max() < 1e-6


def test_prior_sampling_covers_the_dataset_uniformly(pendulum_file):
    config = sac.Config(env="Pendulum-v1", prior_data=pendulum_file, batch_size=256, total_timesteps=2_000)
    buffer = online_buffer(config, jax.random.key(0))
    prior_obs = np.asarray(offline.load(pendulum_file).obs)
    sample = jax.jit(offpolicy.sample_batch)
    rows = np.concatenate(
        [np.asarray(sample(config, buffer, k).obs[:128]) for k in jax.random.split(jax.random.key(3), 40)]
    )
    index = np.abs(rows[:, None] - prior_obs[None]).sum(-1).argmin(1)
    counts = np.bincount(index, minlength=len(prior_obs))  # 5,120 draws over 400 rows: 12.8 each
    assert (counts > 0).mean() > 0.99 and counts.max() < 40


def distinct_target_learner(config: sac.Config, key: jax.Array) -> sac.Learner:
    init_key, target_key = jax.random.split(key)
    learner = sac.init_learner(config, init_key, jnp.zeros((1, 4)))
    target = ensemble_init(sac.make_critic(config), target_key, config.num_critics, jnp.zeros((1, 4)))
    return learner._replace(target_critic=target, log_alpha=jnp.log(jnp.float32(0.3)))


def discrete_batch(key: jax.Array, size: int = 16) -> replay.Batch:
    obs_key, next_key, reward_key = jax.random.split(key, 3)
    discount = jnp.where(jnp.arange(size) % 5 == 0, 0.0, 0.9)
    return replay.Batch(
        jax.random.normal(obs_key, (size, 4)),
        jnp.zeros((size,), jnp.int32),
        jax.random.normal(reward_key, (size,)),
        discount,
        jax.random.normal(next_key, (size, 4)),
    )


def reference_subset_targets(config: sac.Config, learner: sac.Learner, batch: replay.Batch) -> dict:
    """Discrete soft targets r + d * sum_a p(a) (min_{i in S} Q_i(a) - alpha log p(a)) for every subset S."""
    logits = np.asarray(sac.make_actor(config).apply(learner.actor, batch.next_obs), np.float64)
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    q = np.asarray(sac.critic_values(config, learner.target_critic, batch.next_obs), np.float64)  # [N, B, A]
    targets = {}
    for subset in itertools.combinations(range(config.num_critics), config.target_subset):
        value = (np.exp(log_p) * (q[list(subset)].min(0) - 0.3 * log_p)).sum(-1)
        targets[subset] = np.asarray(batch.reward) + np.asarray(batch.discount) * value
    return targets


def test_subset_target_is_the_minimum_of_a_uniformly_random_subset():
    config = sac.Config(env="CartPole-v1", num_critics=5, target_subset=2, hidden=(16,), total_timesteps=2_000)
    learner = distinct_target_learner(config, jax.random.key(0))
    batch = discrete_batch(jax.random.key(1))
    targets = reference_subset_targets(config, learner, batch)
    keys = jax.random.split(jax.random.key(2), 200)
    all_targets = np.asarray(jax.jit(jax.vmap(lambda k: sac.critic_target(config, learner, batch, k)))(keys))
    seen = []
    for got in all_targets.astype(np.float64):
        match = [s for s, want in targets.items() if np.allclose(got, want, rtol=1e-5, atol=1e-5)]
        assert len(match) == 1, "the target must be one subset's minimum, the same subset for the whole batch"
        seen.append(match[0])
    counts = np.asarray([seen.count(s) for s in targets])  # 10 subsets, 20 expected each
    assert counts.min() >= 5 and counts.max() <= 40


def test_subset_of_every_critic_is_the_full_minimum():
    base = dict(env="CartPole-v1", num_critics=3, hidden=(16,), total_timesteps=2_000)
    full = sac.Config(**base, target_subset=3)
    learner = distinct_target_learner(full, jax.random.key(0))
    batch = discrete_batch(jax.random.key(1))
    key = jax.random.key(2)
    np.testing.assert_array_equal(
        sac.critic_target(full, learner, batch, key), sac.critic_target(sac.Config(**base), learner, batch, key)
    )


def test_actor_on_the_ensemble_mean():
    config = sac.Config(env="CartPole-v1", num_critics=4, actor_mean_q=True, hidden=(16,), total_timesteps=2_000)
    learner = distinct_target_learner(config, jax.random.key(0))
    obs = discrete_batch(jax.random.key(1)).obs
    loss, _ = sac.actor_loss(config, learner.actor, learner, obs, jax.random.key(2))
    logits = np.asarray(sac.make_actor(config).apply(learner.actor, obs), np.float64)
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    q = np.asarray(sac.critic_values(config, learner.critic, obs), np.float64).mean(0)
    want = (np.exp(log_p) * (0.3 * log_p - q)).sum(-1).mean()
    np.testing.assert_allclose(float(loss), want, rtol=1e-5)


@pytest.mark.slow  # make test-all: the make test budget
def test_rlpd_trains_with_its_dataset_in_every_batch(pendulum_file):
    config = sac.rlpd_config(
        prior_data=pendulum_file, hidden=(16, 16), batch_size=16, gradient_steps=3, num_critics=4,
        total_timesteps=64, learning_starts=16, buffer_size=256,
    )  # fmt: skip
    metrics = jax.jit(sac.train)(config, jax.random.key(0)).metrics
    assert np.isnan(metrics["critic_loss"][:16]).all() and np.isfinite(metrics["critic_loss"][16:]).all()
    # half of every batch has reward MARK, so the critics' values rise well above zero, which the
    # env's rewards (all negative) alone cannot do
    assert float(metrics["q_mean"][-1]) > 0.5


# --- bad input -----------------------------------------------------------------------------------


def _error(**fields) -> str:
    with pytest.raises(ConfigError) as info:
        sac.Config(**{"total_timesteps": 2_000, **fields})
    return str(info.value)


def test_prior_data_from_another_env_is_refused_naming_both(cartpole_file, pendulum_file):
    message = _error(env="Pendulum-v1", prior_data=cartpole_file)
    assert "prior_data" in message and "Pendulum-v1" in message and "CartPole-v1" in message
    message = _error(env="MountainCarContinuous-v0", prior_data=pendulum_file)
    assert "prior_data" in message and "MountainCarContinuous-v0" in message and "Pendulum-v1" in message


def test_missing_prior_data_says_where_it_looked(tmp_path):
    message = _error(env="Pendulum-v1", prior_data=str(tmp_path / "absent.npz"))
    assert "prior_data" in message and str(tmp_path / "absent.npz") in message


@pytest.mark.parametrize("fraction", [0.0, 1.0, 1.5, 0.001])
def test_prior_fraction_out_of_range(pendulum_file, fraction):
    assert "prior_fraction" in _error(env="Pendulum-v1", prior_data=pendulum_file, prior_fraction=fraction)


def test_prior_data_in_an_offline_run(pendulum_file):
    assert "prior_data" in _error(env="Pendulum-v1", dataset=pendulum_file, prior_data=pendulum_file)


def test_subset_larger_than_the_ensemble():
    message = _error(env="Pendulum-v1", num_critics=2, target_subset=3)
    assert "target_subset" in message and "num_critics=2" in message


def test_rlpd_without_a_dataset():
    with pytest.raises(ConfigError, match="prior_data"):
        sac.rlpd_config(env="Pendulum-v1")


# --- offline to online -----------------------------------------------------------------------------


def test_seed_data_fills_each_env_column_with_a_contiguous_share(pendulum_file):
    config = iql.Config(env="Pendulum-v1", seed_data=pendulum_file, num_envs=2, buffer_size=1_000, hidden=(8,))
    state = iql.init(config, jax.random.key(0))
    data = offline.load(pendulum_file)
    buffer = state.buffer
    assert int(buffer.size) == 200 and int(buffer.pos) == 200
    for column in range(2):
        rows = slice(column * 200, (column + 1) * 200)
        np.testing.assert_array_equal(np.asarray(buffer.data.obs[:200, column]), data.obs[rows])
        np.testing.assert_array_equal(np.asarray(buffer.data.next_obs[:200, column]), data.next_obs[rows])
        np.testing.assert_array_equal(np.asarray(buffer.data.terminated[:200, column]), data.terminated[rows])
        want = np.asarray(data.truncated[rows]).copy()
        want[-1] = not data.terminated[rows][-1]  # the share's end stops n-step returns
        np.testing.assert_array_equal(np.asarray(buffer.data.truncated[:200, column]), want)
    action = offpolicy.to_env_action(config, buffer.data.action[:200, 0])
    np.testing.assert_allclose(np.asarray(action), data.action[:200], atol=1e-5)


@pytest.fixture(scope="module")
def offline_iql(pendulum_file):
    config = iql.Config(
        env="Pendulum-v1", dataset=pendulum_file, offline_updates=20, gradient_steps=10, hidden=(8, 8),
        batch_size=16, normalize_obs=True,
    )  # fmt: skip
    return config, jax.jit(iql.train)(config, jax.random.key(0)).state


def online_iql(pendulum_file, **fields) -> iql.Config:
    base = dict(
        env="Pendulum-v1", seed_data=pendulum_file, normalize_obs=True, total_timesteps=24, learning_starts=0,
        hidden=(8, 8), batch_size=16, buffer_size=1_000,
    )  # fmt: skip
    return iql.Config(**{**base, **fields})


def test_handover_keeps_the_offline_learner_bitwise(pendulum_file, offline_iql):
    _, offline_state = offline_iql
    config = online_iql(pendulum_file)
    state = offpolicy.handover(config, offline_state.learner, jax.random.key(1), iql.ALGORITHM)
    for a, b in zip(jax.tree.leaves(state.learner), jax.tree.leaves(offline_state.learner)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert int(state.buffer.size) == 400 and int(state.iteration) == 0
    result = jax.jit(iql.finetune)(config, offline_state, jax.random.key(1))
    assert int(result.state.buffer.size) == 424
    assert np.isfinite(result.metrics["critic_loss"]).all()
    # and the online updates then move it
    moved = jax.tree.map(lambda a, b: not np.array_equal(np.asarray(a), np.asarray(b)), result.state.learner.actor,
                         offline_state.learner.actor)  # fmt: skip
    assert any(jax.tree.leaves(moved))


def test_handover_refuses_a_learner_built_differently(pendulum_file, offline_iql):
    _, offline_state = offline_iql
    with pytest.raises(ValueError, match=r"learner.*\[8, 8\]|hidden"):
        offpolicy.handover(online_iql(pendulum_file, hidden=(8, 4)), offline_state.learner, jax.random.key(1),
                           iql.ALGORITHM)  # fmt: skip


def test_online_normalize_obs_uses_the_seed_data_statistics(pendulum_file):
    config = online_iql(pendulum_file)
    raw = np.asarray(offline.load(pendulum_file).obs, np.float64)
    mean, std = raw.mean(0), raw.std(0) + offpolicy.OBS_STD_FLOOR
    state = iql.init(config, jax.random.key(0))
    batch = offpolicy.sample_batch(config, state.buffer, jax.random.key(2))
    plain = replay.sample(state.buffer, jax.random.key(2), config.batch_size, config.gamma)
    np.testing.assert_allclose(np.asarray(batch.obs), (np.asarray(plain.obs) - mean) / std, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(
        np.asarray(batch.next_obs), (np.asarray(plain.next_obs) - mean) / std, rtol=1e-4, atol=1e-4
    )
    act = iql.policy(config, state, deterministic=True)
    probe = jnp.asarray(raw[:8], jnp.float32)
    want = iql.policy_action(config, state.learner.actor, jnp.asarray((raw[:8] - mean) / std, jnp.float32))
    np.testing.assert_allclose(
        np.asarray(act(probe, jax.random.key(0))), np.asarray(offpolicy.to_env_action(config, want)), atol=1e-5
    )


def test_bc_weight_falls_linearly_to_zero():
    config = td3.Config(env="Pendulum-v1", td3_bc=True, bc_decay=100, total_timesteps=2_000)
    weights = [float(td3.bc_weight(config, jnp.int32(s))) for s in (1, 50, 100, 400)]
    np.testing.assert_allclose(weights, [0.99, 0.5, 0.0, 0.0], atol=1e-6)
    assert float(td3.bc_weight(config.replace(bc_decay=0), jnp.int32(10**6))) == 1.0
    learner = td3.init_learner(config, jax.random.key(0), jnp.zeros((1, 3)))
    obs = jax.random.normal(jax.random.key(1), (16, 3))
    data = jax.random.uniform(jax.random.key(2), (16, 1), minval=-1, maxval=1)
    full = td3.actor_loss(config, learner.actor, learner.critic, obs, data, 1.0)
    none = td3.actor_loss(config, learner.actor, learner.critic, obs, data, 0.0)
    bc = np.mean((np.asarray(td3.actor_action(config, learner.actor, obs)) - np.asarray(data)) ** 2)
    np.testing.assert_allclose(float(full) - float(none), bc, rtol=1e-5)


def test_seed_data_larger_than_the_buffer(pendulum_file):
    message = _error(env="Pendulum-v1", seed_data=pendulum_file, buffer_size=300, batch_size=64)
    assert "buffer_size" in message and "400" in message


def test_seed_data_in_an_offline_run(pendulum_file):
    assert "seed_data" in _error(env="Pendulum-v1", dataset=pendulum_file, seed_data=pendulum_file)


def test_online_normalize_obs_without_a_dataset():
    message = _error(env="Pendulum-v1", normalize_obs=True)
    assert "normalize_obs" in message and "seed_data" in message


def test_bc_decay_without_td3_bc():
    with pytest.raises(ConfigError, match="bc_decay"):
        td3.Config(env="Pendulum-v1", bc_decay=100)


# --- jump-start ------------------------------------------------------------------------------------


def constant_guide(obs: jax.Array, key: jax.Array) -> jax.Array:
    """Torque 1.5 (stored as 0.75 in [-1, 1]) whatever the state."""
    del key
    return jnp.full(obs.shape[:1] + (1,), 1.5)


def jump_start_run(guide_return: float):
    """2 Pendulum envs, 2,400 steps each (12 episodes, 200 steps), the guide at first 30 steps of
    each, 3 stages of 2 episodes; only ``guide_return`` (traced) differs, so the program is shared."""
    config = sac.Config(
        env="Pendulum-v1", num_envs=2, train_freq=4, guide_steps=30, guide_stages=3, guide_episodes=2,
        guide_return=guide_return, hidden=(8,), total_timesteps=2_400, learning_starts=2_000, buffer_size=2_400,
        batch_size=8,
    )  # fmt: skip
    return JUMP_START(config, jax.random.key(0), constant_guide)


JUMP_START = jax.jit(sac.jump_start, static_argnums=2)


@pytest.mark.slow  # make test-all: the make test budget
def test_the_guide_plays_the_first_steps_of_every_episode():
    result = jump_start_run(float("inf"))  # never passed: the guide's share stays at 30
    action = np.asarray(result.state.buffer.data.action[:, :, 0])  # [steps, env]
    guided = np.arange(len(action)) % 200 < 30
    assert (action[guided] == 0.75).all()
    assert (action[~guided] != 0.75).all()  # random actions (warm-up) and the policy's after it
    assert (np.asarray(result.metrics["guide_steps"]) == 30).all()


@pytest.mark.slow  # make test-all: the make test budget
def test_the_curriculum_lowers_the_guide_stage_by_stage():
    result = jump_start_run(-1e9)
    share = np.asarray(result.metrics["guide_steps"])
    episodes = np.cumsum(np.asarray(result.metrics["episodes"]))
    # every return passes; a stage ends each time 2 more episodes have finished: 30 -> 20 -> 10 -> 0
    want = np.maximum(30 - 10 * (episodes // 2), 0)
    np.testing.assert_array_equal(share, want)
    action = np.asarray(result.state.buffer.data.action[:, :, 0])
    # the third pair of episodes (steps 400-599 of each env) ran with the guide's share at 10
    assert (action[400:410] == 0.75).all() and (action[410:600] != 0.75).all()
    assert (action[600:] != 0.75).all()


@pytest.mark.slow  # make test-all: the make test budget
def test_a_guide_that_is_never_passed_keeps_its_share():
    result = jump_start_run(0.0)  # Pendulum's returns are below 0
    assert (np.asarray(result.metrics["guide_steps"]) == 30).all()


def test_jump_start_bad_input():
    with pytest.raises(ConfigError, match="guide_return"):
        sac.Config(env="Pendulum-v1", guide_steps=30, total_timesteps=2_000)
    with pytest.raises(ConfigError, match="guide_stages"):
        sac.Config(env="Pendulum-v1", guide_steps=3, guide_stages=5, guide_return=-200.0, total_timesteps=2_000)
    with pytest.raises(ConfigError, match="guide_steps"):
        sac.jump_start(sac.Config(env="Pendulum-v1", total_timesteps=2_000), jax.random.key(0), constant_guide)
    config = sac.Config(env="Pendulum-v1", guide_steps=30, guide_return=-200.0, total_timesteps=2_000)
    with pytest.raises(ValueError, match="jump_start"):
        sac.train(config, jax.random.key(0))


# --- Cal-QL ----------------------------------------------------------------------------------------


def plain_returns_to_go(reward: np.ndarray, ended: np.ndarray, gamma: float) -> np.ndarray:
    out, g = np.zeros(len(reward)), 0.0
    for i in reversed(range(len(reward))):
        g = reward[i] + (0.0 if ended[i] else gamma * g)
        out[i] = g
    return out


@pytest.mark.slow  # make test-all: the make test budget
def test_mc_returns_of_the_dataset_and_of_the_seeded_buffer(pendulum_file):
    data = offline.load(pendulum_file)
    data = data.replace(reward=np.linspace(-1.0, 1.0, len(data)).astype(np.float32))  # distinct rewards
    path = offline.save(data, pendulum_file.replace(".npz", "-ramp.npz"))
    want = plain_returns_to_go(np.asarray(data.reward), np.asarray(data.terminated | data.truncated), 0.9)
    offline_config = sac.Config(env="Pendulum-v1", dataset=str(path), cql=True, calql=True, gamma=0.9, hidden=(8,))
    got = np.asarray(offpolicy.dataset_buffer(offline_config).data.mc_return[:, 0])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    online = sac.Config(
        env="Pendulum-v1", seed_data=str(path), cql=True, calql=True, gamma=0.9, hidden=(8,), num_envs=2,
        buffer_size=1_000, total_timesteps=40, learning_starts=0, batch_size=8,
    )  # fmt: skip
    result = jax.jit(sac.train)(online, jax.random.key(0))
    mc = np.asarray(result.state.buffer.data.mc_return)
    np.testing.assert_allclose(mc[:200].T.reshape(-1), want, rtol=1e-5, atol=1e-5)  # column e: rows e*200..
    assert np.isneginf(mc[200:220]).all()  # steps collected online have no return
    assert np.isfinite(np.asarray(result.metrics["cql_gap"])).all()


@pytest.mark.slow  # make test-all: the make test budget
def test_calql_floors_the_policy_sampled_values_at_the_mc_return():
    config = sac.Config(env="Pendulum-v1", cql=True, calql=True, cql_samples=4, hidden=(16,), total_timesteps=2_000)
    learner = sac.init_learner(config, jax.random.key(0), jnp.zeros((1, 3)))
    keys = jax.random.split(jax.random.key(1), 3)
    batch = replay.Batch(
        jax.random.normal(keys[0], (8, 3)),
        jax.random.uniform(keys[1], (8, 1), minval=-1, maxval=1),
        jnp.zeros(8),
        jnp.full(8, 0.99),
        jax.random.normal(keys[2], (8, 3)),
    )
    key = jax.random.key(2)
    cql_gap = jax.jit(sac.cql_gap)
    gap = lambda cfg, floor: np.asarray(
        cql_gap(cfg, learner.critic, learner.actor, batch._replace(mc_return=jnp.full(8, floor, jnp.float32)), key)
    )
    plain = gap(config.replace(calql=False), 0.0)
    np.testing.assert_array_equal(gap(config, -np.inf), plain)  # no return known: CQL's gap
    # a floor far above every value replaces each policy sample: the logsumexp moves with it
    np.testing.assert_allclose(gap(config, 1_005.0) - gap(config, 1_000.0), 5.0, rtol=1e-4)
    assert (gap(config, 1_000.0) > plain + 900).all()


def test_calql_bad_input(pendulum_file):
    assert "calql" in _error(env="Pendulum-v1", calql=True)
    assert "calql" in _error(env="CartPole-v1", cql=True, calql=True)
    assert "seed_data" in _error(env="Pendulum-v1", cql=True, calql=True, prior_data=pendulum_file)


# --- hybrid on-policy learning (HNPG-style) --------------------------------------------------------


def hybrid_ppo(cartpole_file, **fields) -> ppo.Config:
    base = dict(
        env="CartPole-v1", offline_data=cartpole_file, num_envs=4, num_steps=16, total_timesteps=128, hidden=(16,)
    )
    return ppo.Config(**{**base, **fields})


def test_offline_critic_loss_is_td0_on_the_data(cartpole_file):
    config = hybrid_ppo(cartpole_file, offline_vf_coef=0.7)
    state = ppo.init(config, jax.random.key(0))
    data = offline.sample(offline.load(cartpole_file), "CartPole-v1", jax.random.key(1), 32, 0.9)
    got = float(ppo.offline_value_loss(config, state.params, data))
    value = lambda obs: np.asarray(ppo.make_network(config).apply(state.params, obs)[2], np.float64)
    target = np.asarray(data.reward) + np.asarray(data.discount) * value(data.next_obs)
    np.testing.assert_allclose(got, 0.5 * np.mean((value(data.obs) - target) ** 2), rtol=1e-5)
    # in the PPO loss it is added with its weight, and only the critic's value at s gets its gradient
    rollout = ppo.Batch(data.obs, data.action, jnp.zeros(32), jnp.zeros(32), jnp.ones(32), jnp.zeros(32))
    with_data, aux = ppo.ppo_loss(config, state.params, rollout._replace(offline=data))
    without, _ = ppo.ppo_loss(config, state.params, rollout)
    np.testing.assert_allclose(float(with_data) - float(without), 0.7 * got, rtol=1e-4)
    assert float(aux["offline_value_loss"]) == pytest.approx(got, rel=1e-5)


@pytest.mark.slow  # make test-all: the make test budget
def test_hybrid_ppo_trains_with_the_data(cartpole_file):
    metrics = jax.jit(ppo.train)(hybrid_ppo(cartpole_file), jax.random.key(0)).metrics
    assert metrics["offline_value_loss"].shape == (2,) and np.isfinite(metrics["offline_value_loss"]).all()


@pytest.mark.parametrize(
    "fields,name",
    [
        (dict(recurrent="gru", num_minibatches=2), "recurrent"),
        (dict(advantage="reinforce"), "advantage"),
        (dict(normalize_obs=True), "normalize_obs"),
        (dict(env="Acrobot-v1"), "offline_data"),
    ],
)
def test_hybrid_ppo_bad_input(cartpole_file, fields, name):
    with pytest.raises(ConfigError, match=name):
        hybrid_ppo(cartpole_file, **fields)
