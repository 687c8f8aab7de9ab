"""Offline datasets (purejaxlib.offline) and the offline learners' pieces: checks that name the bad
field and index, save/load bitwise, n-step sampling against a plain loop, collection, levels, and
each offline loss (expectile, CQL's gap, TD3+BC's actor term, advantage weights) against a plain
reference on small hand-made batches."""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxlib import losses, offline, offpolicy, replay
from purejaxlib.algos import bc, dqn, iql, sac, td3

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def heuristic(obs: jax.Array, key: jax.Array) -> jax.Array:
    """A scripted CartPole controller (push towards the pole's lean): 500 at epsilon 0."""
    del key
    return (obs[..., 2] + 0.3 * obs[..., 3] > 0).astype(jnp.int32)


@pytest.fixture(scope="module")
def cartpole() -> offline.Dataset:
    policy = offline.behaviour("CartPole-v1", heuristic, epsilon=0.5)
    return offline.collect("CartPole-v1", policy, jax.random.key(0), 2_000, 8, info={"level": "test"})


@pytest.fixture(scope="module")
def pendulum() -> offline.Dataset:
    return offline.collect("Pendulum-v1", offline.behaviour("Pendulum-v1", None), jax.random.key(1), 800, 4)


def hand_made(rewards: list[list[float]], terminated_last: list[bool]) -> offline.Dataset:
    """Episodes of 1-d observations 0, 1, 2...; each episode's last step terminated or truncated."""
    obs, reward, term, trunc, episode = [], [], [], [], []
    for e, (rs, end) in enumerate(zip(rewards, terminated_last)):
        for t, r in enumerate(rs):
            obs.append([float(t)])
            reward.append(r)
            last = t == len(rs) - 1
            term.append(last and end)
            trunc.append(last and not end)
            episode.append(e)
    obs_a = np.asarray(obs, np.float32)
    return offline.Dataset(
        obs_a,
        np.zeros(len(obs), np.int32),
        np.asarray(reward, np.float32),
        obs_a + 1,
        np.asarray(term),
        np.asarray(trunc),
        np.asarray(episode, np.int32),
    )


# --- datasets ----------------------------------------------------------------------------------


def test_collect_gives_time_ordered_episodes_with_known_log_probs(cartpole):
    offline.validate(cartpole, "CartPole-v1")
    assert len(cartpole) == 2_000 and cartpole.info["env"] == "CartPole-v1" and cartpole.info["max_steps"] == 500
    # successive steps of an episode chain: next_obs of one is obs of the next
    same = np.asarray(cartpole.episode[1:] == cartpole.episode[:-1])
    np.testing.assert_array_equal(cartpole.next_obs[:-1][same], cartpole.obs[1:][same])
    # epsilon-greedy mixture: log p = log(1 - eps + eps/2) for the controller's action, log(eps/2) otherwise
    greedy = np.asarray(heuristic(jnp.asarray(cartpole.obs), None))
    want = np.where(cartpole.action == greedy, math.log(0.75), math.log(0.25))
    np.testing.assert_allclose(cartpole.log_prob, want, rtol=1e-6)
    assert 0.2 < np.mean(cartpole.action != greedy) < 0.3  # a uniform pick disagrees half the time


def test_save_load_is_bitwise_and_never_unpickles(cartpole, tmp_path):
    path = offline.save(cartpole, tmp_path / "d")
    assert path.name == "d.npz"
    back = offline.load(path, "CartPole-v1")
    for name in offline.ARRAYS:
        a, b = np.asarray(getattr(cartpole, name)), np.asarray(getattr(back, name))
        assert a.dtype == b.dtype and np.array_equal(a, b), name
    assert back.info == json.loads(json.dumps(cartpole.info))
    # a file holding a pickled object is refused, not unpickled
    np.savez(
        tmp_path / "evil.npz",
        __header__=np.asarray(json.dumps({"format": offline.FORMAT, "version": 1, "arrays": ["obs"], "info": {}})),
        obs=np.asarray([object()], dtype=object),
    )
    with pytest.raises(ValueError, match="pickle"):
        offline.load(tmp_path / "evil.npz")


def test_load_says_where_it_looked_and_refuses_other_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.npz.*make_dataset"):
        offline.load(tmp_path / "nope.npz")
    np.savez(tmp_path / "plain.npz", x=np.zeros(3))
    with pytest.raises(offline.DatasetError, match="not a purejaxlib dataset"):
        offline.load(tmp_path / "plain.npz")


def test_newer_format_versions_are_refused(cartpole, tmp_path):
    path = offline.save(cartpole, tmp_path / "d.npz")
    with np.load(path) as data:
        arrays = dict(data)
    header = json.loads(str(arrays.pop("__header__")))
    np.savez(path, __header__=np.asarray(json.dumps({**header, "version": offline.VERSION + 1})), **arrays)
    with pytest.raises(offline.DatasetError, match="newer"):
        offline.load(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.replace(reward=d.reward[:-1]), r"reward has 1999|has 1999 rows"),
        (lambda d: d.replace(obs=np.where(np.arange(len(d))[:, None] == 7, np.nan, d.obs)), r"obs\[7\] is not finite"),
        (lambda d: d.replace(action=np.where(np.arange(len(d)) == 11, 2, d.action)), r"action\[11\] = 2 is outside"),
        (lambda d: d.replace(obs=d.obs[:, :3], next_obs=d.next_obs[:, :3]), r"\(3,\).*CartPole-v1 observes \(4,\)"),
        (lambda d: d.replace(truncated=np.zeros_like(d.truncated)), "neither terminated nor truncated"),
        (lambda d: d.replace(action=d.action.astype(np.float32)), "action must be int"),
    ],
)
def test_bad_data_is_refused_naming_field_and_index(cartpole, change, message):
    with pytest.raises(offline.DatasetError, match=message):
        offline.validate(change(cartpole), "CartPole-v1")


def test_continuous_actions_outside_the_bounds_are_refused(pendulum):
    offline.validate(pendulum, "Pendulum-v1")
    bad = pendulum.replace(action=np.where(np.arange(len(pendulum))[:, None] == 5, 2.5, pendulum.action))
    with pytest.raises(offline.DatasetError, match=r"action\[5\] = \[2.5\] is outside Pendulum-v1's action space"):
        offline.validate(bad, "Pendulum-v1")


def test_a_config_refuses_a_dataset_of_another_env(cartpole, tmp_path):
    path = offline.save(cartpole, tmp_path / "cartpole.npz")
    with pytest.raises(ValueError, match=r"dataset: obs are \(4,\) per step, but Pendulum-v1 observes \(3,\)"):
        iql.Config(env="Pendulum-v1", dataset=str(path))
    with pytest.raises(ValueError, match="BC learns from a dataset only"):
        bc.Config(env="CartPole-v1")


def test_n_step_sampling_matches_a_plain_loop():
    # episodes: 3 steps terminated, 4 steps truncated (bootstrapped), 2 steps terminated
    data = hand_made([[1.0, 2.0, 3.0], [10.0, 20.0, 30.0, 40.0], [5.0, 6.0]], [True, False, True])
    buffer = replay.Buffer(
        replay.Stored(
            *(
                np.asarray(x)[:, None]
                for x in (data.obs, data.action, data.reward, data.terminated, data.truncated, data.next_obs)
            )
        ),
        jnp.int32(0),
        jnp.int32(len(data)),
    )
    gamma, n = 0.9, 3
    batch = replay.sample(buffer, jax.random.key(0), 512, jnp.float32(gamma), n)
    starts, ends = offline.episode_bounds(data)
    episode_of = np.asarray(data.episode)
    for i in range(512):
        # the sampled start row is the one whose obs and episode match (obs = time in episode)
        t = int(batch.obs[i, 0])
        candidates = [s + t for s, e in zip(starts, ends) if s + t < e]
        found = False
        for row in candidates:
            end = ends[episode_of[row]]
            k = min(n, end - row)
            want_reward = sum(gamma**j * data.reward[row + j] for j in range(k))
            last = row + k - 1
            want_discount = 0.0 if data.terminated[last] else gamma**k
            if np.isclose(batch.reward[i], want_reward, rtol=1e-5) and np.isclose(batch.discount[i], want_discount):
                np.testing.assert_allclose(batch.next_obs[i], data.next_obs[last])
                found = True
        assert found, f"sample {i}: reward {batch.reward[i]}, discount {batch.discount[i]} match no start row"


def test_from_steps_orders_by_env_and_marks_cuts_truncated():
    t, n = 3, 2
    obs = np.arange(t * n, dtype=np.float32).reshape(t, n, 1)
    term = np.zeros((t, n), bool)
    term[1, 0] = True  # env 0 ends an episode at step 1
    data = offline.from_steps(obs, np.zeros((t, n), np.int32), np.ones((t, n)), obs + 100, term, np.zeros((t, n)))
    np.testing.assert_array_equal(data.obs[:, 0], [0, 2, 4, 1, 3, 5])  # env 0's steps, then env 1's
    np.testing.assert_array_equal(data.episode, [0, 0, 1, 2, 2, 2])
    np.testing.assert_array_equal(data.terminated, [False, True, False, False, False, False])
    np.testing.assert_array_equal(data.truncated, [False, False, True, False, False, True])  # cuts
    offline.validate(data)


def test_from_replay_reads_a_wrapped_buffer_oldest_first():
    row = lambda step: replay.Stored(  # one step of one env: leaves [T=1, num_envs=1, ...]
        jnp.full((1, 1, 4), step, jnp.float32),
        jnp.zeros((1, 1), jnp.int32),
        jnp.full((1, 1), step, jnp.float32),
        jnp.zeros((1, 1), bool),
        jnp.zeros((1, 1), bool),
        jnp.full((1, 1, 4), step + 0.5, jnp.float32),
    )
    buffer = replay.init(jax.tree.map(lambda x: x[0], row(0)), 4)
    for step in range(6):  # 6 rows into 4: rows of steps 2..5 remain, the oldest at position 2
        buffer = replay.add(buffer, row(step))
    data = offline.from_replay(buffer, "CartPole-v1")
    np.testing.assert_array_equal(data.reward, [2, 3, 4, 5])
    np.testing.assert_array_equal(data.next_obs[:, 0], [2.5, 3.5, 4.5, 5.5])
    np.testing.assert_array_equal(data.truncated, [False, False, False, True])  # the cut at the end
    offline.validate(data, "CartPole-v1")


def test_split_keeps_episodes_whole_and_disjoint(cartpole):
    train, held = offline.split(cartpole, 0.25, seed=3)
    assert len(train) + len(held) == len(cartpole)
    assert not set(np.unique(train.episode)) & set(np.unique(held.episode))
    assert abs(held.num_episodes - 0.25 * cartpole.num_episodes) <= 1
    offline.validate(train)
    offline.validate(held)
    again, _ = offline.split(cartpole, 0.25, seed=3)
    np.testing.assert_array_equal(again.obs, train.obs)


def test_concatenate_renumbers_episodes(cartpole):
    both = offline.concatenate(cartpole, cartpole)
    offline.validate(both, "CartPole-v1")
    assert both.num_episodes == 2 * cartpole.num_episodes and len(both) == 2 * len(cartpole)
    np.testing.assert_array_equal(both.log_prob[len(cartpole) :], cartpole.log_prob)


def test_statistics_and_normalized_score(cartpole):
    stats = offline.statistics(cartpole)
    returns = offline.episode_returns(cartpole)
    assert stats["return_mean"] == pytest.approx(returns.mean())
    assert stats["complete_episodes"] == len(returns) < stats["episodes"]  # cut episodes are not counted
    np.testing.assert_allclose(stats["obs_mean"], np.asarray(cartpole.obs).mean(0), rtol=1e-5)
    info = {"random_return": 20.0, "expert_return": 500.0}
    np.testing.assert_allclose(offline.normalized_score([20.0, 260.0, 500.0], info), [0.0, 50.0, 100.0])
    with pytest.raises(offline.DatasetError, match="random_return"):
        offline.normalized_score([1.0], {})


# --- losses against plain references -----------------------------------------------------------


def test_expectile_loss_matches_plain_reference():
    diff = np.asarray([-2.0, -0.5, 0.0, 0.3, 1.5], np.float32)
    for tau in (0.5, 0.7, 0.9):
        want = np.mean([(tau if d >= 0 else 1 - tau) * d * d for d in diff])
        np.testing.assert_allclose(losses.expectile_loss(jnp.asarray(diff), tau), want, rtol=1e-6)


def test_cql_gap_and_advantage_weights_match_plain_references():
    rng = np.random.default_rng(0)
    q_samples = rng.normal(size=(2, 5, 3)).astype(np.float32)  # [N, S, B]
    q_data = rng.normal(size=(2, 3)).astype(np.float32)
    want = [np.mean([np.log(np.sum(np.exp(q_samples[n, :, b]))) - q_data[n, b] for b in range(3)]) for n in range(2)]
    np.testing.assert_allclose(losses.cql_gap(jnp.asarray(q_samples), jnp.asarray(q_data)), want, rtol=1e-5)
    adv = np.asarray([-1.0, 0.0, 0.5, 10.0], np.float32)
    np.testing.assert_allclose(
        losses.advantage_weights(jnp.asarray(adv), 3.0, 100.0), np.minimum(np.exp(3.0 * adv), 100.0), rtol=1e-6
    )


def test_dqn_cql_loss_adds_the_logsumexp_gap(cartpole, tmp_path):
    config = dqn.Config(
        env="CartPole-v1",
        hidden=(8,),
        cql=True,
        cql_alpha=2.0,
        loss="mse",
        dataset=str(offline.save(cartpole, tmp_path / "c.npz")),
    )
    params = dqn.init(config, jax.random.key(0)).learner.params
    batch = offline.sample(cartpole, "CartPole-v1", jax.random.key(1), 16)
    target = jnp.zeros(16)
    loss, aux = dqn.q_loss(config, params, target, batch)
    q = np.asarray(dqn.q_values(config, params, batch.obs))
    taken = q[np.arange(16), np.asarray(batch.action)]
    gap = np.mean(np.log(np.exp(q).sum(-1)) - taken)
    np.testing.assert_allclose(float(loss), 0.5 * np.mean(taken**2) + 2.0 * gap, rtol=1e-5)
    np.testing.assert_allclose(float(aux["cql_gap"]), gap, rtol=1e-5)


def test_td3_bc_actor_loss_matches_the_paper(pendulum, tmp_path):
    config = td3.Config(
        env="Pendulum-v1",
        hidden=(8,),
        td3_bc=True,
        bc_alpha=2.5,
        dataset=str(offline.save(pendulum, tmp_path / "p.npz")),
    )
    learner = td3.init(config, jax.random.key(0)).learner
    batch = offline.sample(pendulum, "Pendulum-v1", jax.random.key(1), 32)
    got = td3.actor_loss(config, learner.actor, learner.critic, batch.obs, batch.action)
    pi = np.asarray(td3.actor_action(config, learner.actor, batch.obs))
    first = jax.tree.map(lambda x: x[0], learner.critic)
    q = np.asarray(td3.make_critic(config).apply(first, batch.obs, jnp.asarray(pi)))
    want = -2.5 / np.abs(q).mean() * q.mean() + np.mean((pi - np.asarray(batch.action)) ** 2)
    np.testing.assert_allclose(float(got), want, rtol=1e-5)
    plain = td3.actor_loss(config.replace(td3_bc=False), learner.actor, learner.critic, batch.obs)
    np.testing.assert_allclose(float(plain), -q.mean(), rtol=1e-5)


def test_sac_discrete_cql_gap_is_the_exact_logsumexp(cartpole, tmp_path):
    config = sac.Config(
        env="CartPole-v1", hidden=(8,), cql=True, dataset=str(offline.save(cartpole, tmp_path / "c.npz"))
    )
    learner = sac.init(config, jax.random.key(0)).learner
    batch = offline.sample(cartpole, "CartPole-v1", jax.random.key(1), 16)
    gap = np.asarray(sac.cql_gap(config, learner.critic, learner.actor, batch, jax.random.key(2)))
    q = np.asarray(sac.critic_values(config, learner.critic, batch.obs))  # [N, B, A]
    taken = np.take_along_axis(q, np.asarray(batch.action)[None, :, None], -1)[..., 0]
    np.testing.assert_allclose(gap, np.mean(np.log(np.exp(q).sum(-1)) - taken, axis=1), rtol=1e-5)


def test_iql_policy_extraction_and_value_losses(pendulum, tmp_path):
    config = iql.Config(
        env="Pendulum-v1", hidden=(8,), expectile=0.8, dataset=str(offline.save(pendulum, tmp_path / "p.npz"))
    )
    learner = iql.init(config, jax.random.key(0)).learner
    batch = offline.sample(pendulum, "Pendulum-v1", jax.random.key(1), 32)
    mu, log_std = iql.make_actor(config).apply(learner.actor, batch.obs)
    mean, std, a = np.tanh(np.asarray(mu)), np.exp(np.asarray(log_std)), np.asarray(batch.action)
    want = (-0.5 * ((a - mean) / std) ** 2 - np.log(std) - 0.5 * np.log(2 * np.pi)).sum(-1)
    np.testing.assert_allclose(iql.log_likelihood(config, learner.actor, batch.obs, batch.action), want, rtol=1e-5)
    weights = jnp.linspace(0.5, 2.0, 32)
    np.testing.assert_allclose(
        float(iql.actor_loss(config, learner.actor, batch, weights)), -np.mean(np.asarray(weights) * want), rtol=1e-5
    )
    q = jnp.linspace(-1.0, 1.0, 32)
    v = np.asarray(iql.state_value(config, learner.value, batch.obs))
    d = np.asarray(q) - v
    np.testing.assert_allclose(
        float(iql.value_loss(config, learner.value, batch.obs, q)), np.mean(np.where(d < 0, 0.2, 0.8) * d**2), rtol=1e-5
    )


def test_offline_runs_take_no_env_steps_and_keep_no_buffer(cartpole, tmp_path):
    config = iql.Config(
        env="CartPole-v1",
        hidden=(8,),
        batch_size=16,
        gradient_steps=5,
        offline_updates=10,
        dataset=str(offline.save(cartpole, tmp_path / "c.npz")),
    )
    result = jax.jit(iql.train)(config, jax.random.key(0))
    assert result.state.buffer is None and result.state.env_state is None
    np.testing.assert_array_equal(result.metrics["env_steps"], [0, 0])
    np.testing.assert_array_equal(result.metrics["gradient_steps"], [5, 10])
    assert np.isfinite(result.metrics["critic_loss"]).all()


@pytest.mark.learning
def test_discrete_iql_learns_cartpole_from_noisy_controller_data(tmp_path):
    """Data: a scripted controller that picks uniformly half the time (its episodes average about
    135). IQL's greedy policy recovers the controller: mean return >= 400 over 32 episodes, for
    each of 2 seeds trained in one program."""
    import purejaxlib

    policy = offline.behaviour("CartPole-v1", heuristic, epsilon=0.5)
    data = offline.collect("CartPole-v1", policy, jax.random.key(5), 20_000, 8)
    assert offline.episode_returns(data).mean() < 200
    config = iql.Config(
        env="CartPole-v1",
        hidden=(64, 64),
        gradient_steps=500,
        offline_updates=3_000,
        dataset=str(offline.save(data, tmp_path / "c.npz")),
    )
    swept = purejaxlib.sweep(iql.train, config, seeds=2)
    returns = purejaxlib.evaluate_sweep(swept, jax.random.key(0), 32).returns.mean(-1)
    assert (returns >= 400).all(), returns


# --- readers -----------------------------------------------------------------------------------


def _d4rl_file(path, with_next: bool) -> np.ndarray:
    h5py = pytest.importorskip("h5py")
    obs = np.arange(7 * 4, dtype=np.float32).reshape(7, 4) / 100  # episode 0: rows 0-2, episode 1: rows 3-6
    with h5py.File(path, "w") as f:
        f["observations"] = obs
        f["actions"] = np.asarray([0, 1, 0, 1, 1, 0, 1])
        f["rewards"] = np.ones(7, np.float32)
        f["terminals"] = np.asarray([0, 0, 1, 0, 0, 0, 0], bool)
        f["timeouts"] = np.asarray([0, 0, 0, 0, 0, 0, 1], bool)
        if with_next:
            f["next_observations"] = obs + 0.5
    return obs


def test_read_d4rl_without_next_observations_drops_the_timeout_step(tmp_path):
    obs = _d4rl_file(tmp_path / "d.hdf5", with_next=False)
    data = offline.read_d4rl(tmp_path / "d.hdf5", "CartPole-v1")
    assert len(data) == 6  # the timeout row has no successor on file
    np.testing.assert_array_equal(data.episode, [0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(data.terminated, [0, 0, 1, 0, 0, 0])
    np.testing.assert_array_equal(data.truncated, [0, 0, 0, 0, 0, 1])
    np.testing.assert_array_equal(data.next_obs[[0, 1, 3, 4, 5]], obs[[1, 2, 4, 5, 6]])
    assert data.info["source"] == "d4rl:d.hdf5"


def test_read_d4rl_with_next_observations_keeps_every_step(tmp_path):
    obs = _d4rl_file(tmp_path / "d.hdf5", with_next=True)
    data = offline.read_d4rl(tmp_path / "d.hdf5", "CartPole-v1")
    assert len(data) == 7
    np.testing.assert_array_equal(data.next_obs, obs + 0.5)
    np.testing.assert_array_equal(data.truncated, [0, 0, 0, 0, 0, 0, 1])
    with pytest.raises(offline.DatasetError, match=r"obs are \(4,\).*Pendulum-v1 observes \(3,\)"):
        offline.read_d4rl(tmp_path / "d.hdf5", "Pendulum-v1")
    with pytest.raises(FileNotFoundError, match="never downloads"):
        offline.read_d4rl(tmp_path / "missing.hdf5", "CartPole-v1")


@pytest.mark.filterwarnings("ignore::UserWarning")  # minari asks for author and description
def test_read_minari_from_local_disk(tmp_path, monkeypatch):
    minari = pytest.importorskip("minari")
    gym = pytest.importorskip("gymnasium")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    env = minari.DataCollector(gym.make("CartPole-v1"))
    env.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(3):
        done = False
        while not done:
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            done = terminated or truncated
        env.reset()
    env.create_dataset(dataset_id="cartpole/test-v0", algorithm_name="uniform")
    data = offline.read_minari("cartpole/test-v0", "CartPole-v1")
    episodes = list(minari.load_dataset("cartpole/test-v0").iterate_episodes())
    assert data.num_episodes == 3 and len(data) == sum(len(ep.rewards) for ep in episodes)
    first = episodes[0]
    n = len(first.rewards)
    np.testing.assert_array_equal(data.obs[:n], first.observations[:-1])
    np.testing.assert_array_equal(data.next_obs[:n], first.observations[1:])
    np.testing.assert_array_equal(data.action[:n], first.actions)
    assert data.terminated[n - 1] and data.info["source"] == "minari:cartpole/test-v0"
    with pytest.raises(FileNotFoundError, match=r"no Minari dataset 'cartpole/other-v0'.*never downloads"):
        offline.read_minari("cartpole/other-v0", "CartPole-v1")


# --- AWAC and EDAC -----------------------------------------------------------------------------


def test_gradient_similarity_matches_plain_pairs():
    rng = np.random.default_rng(1)
    grads = rng.normal(size=(3, 4, 2)).astype(np.float32)
    unit = grads / np.linalg.norm(grads, axis=-1, keepdims=True)
    want = np.mean([sum(unit[i, b] @ unit[j, b] for i in range(3) for j in range(3) if i != j) / 2 for b in range(4)])
    np.testing.assert_allclose(float(losses.gradient_similarity(jnp.asarray(grads))), want, rtol=1e-5)
    same = np.repeat(grads[:1], 3, axis=0)  # identical critics: every pair's cosine is 1
    np.testing.assert_allclose(float(losses.gradient_similarity(jnp.asarray(same))), 3 * 2 / 2, rtol=1e-5)


def test_edac_term_uses_each_critics_action_gradient(pendulum, tmp_path):
    config = sac.Config(
        env="Pendulum-v1",
        hidden=(8,),
        num_critics=3,
        edac=True,
        dataset=str(offline.save(pendulum, tmp_path / "p.npz")),
    )
    learner = sac.init(config, jax.random.key(0)).learner
    batch = offline.sample(pendulum, "Pendulum-v1", jax.random.key(1), 16)
    grads = []
    for i in range(3):
        one = jax.tree.map(lambda x, i=i: x[i], learner.critic)
        grads.append(jax.grad(lambda a, p=one: sac.make_critic(config).apply(p, batch.obs, a).sum())(batch.action))
    want = losses.gradient_similarity(jnp.stack(grads))
    np.testing.assert_allclose(float(sac.edac_similarity(config, learner.critic, batch)), float(want), rtol=1e-5)
    with pytest.raises(ValueError, match="EDAC needs continuous actions"):
        sac.Config(env="CartPole-v1", edac=True)


def test_awac_baseline_is_the_policys_expected_value(cartpole, tmp_path):
    config = iql.Config(
        env="CartPole-v1",
        hidden=(8,),
        awac=True,
        temperature=1.0,
        num_critics=2,
        dataset=str(offline.save(cartpole, tmp_path / "c.npz")),
    )
    learner = iql.init(config, jax.random.key(0)).learner
    obs = jnp.asarray(cartpole.obs[:16])
    q = np.asarray(jax.vmap(lambda p: iql.make_critic(config).apply(p, obs))(learner.critic)).min(0)
    probs = np.asarray(jax.nn.softmax(iql.make_actor(config).apply(learner.actor, obs)))
    got = iql.policy_value(config, learner.critic, learner.actor, obs, jax.random.key(0))
    np.testing.assert_allclose(got, (probs * q).sum(-1), rtol=1e-5)
    result = jax.jit(iql.train)(config.replace(gradient_steps=4, offline_updates=8, batch_size=16), jax.random.key(0))
    assert np.isnan(result.metrics["value_loss"]).all() and np.isfinite(result.metrics["critic_loss"]).all()


# --- ReBRAC's next actions and observation normalization ---------------------------------------


def test_next_actions_follow_the_episode_and_sampling_carries_them_n_steps_ahead():
    # episodes: 3 steps terminated, 4 truncated, 2 terminated; the action of row r is r
    data = hand_made([[1.0, 2.0, 3.0], [10.0, 20.0, 30.0, 40.0], [5.0, 6.0]], [True, False, True])
    rows = jnp.arange(len(data), dtype=jnp.float32)[:, None]  # [N, 1]
    following = np.asarray(offline.next_actions(data, rows))[:, 0]
    nan = np.nan
    np.testing.assert_array_equal(following, [1, 2, nan, 4, 5, 6, nan, 8, nan])
    ints = np.asarray(offline.next_actions(data, jnp.arange(len(data), dtype=jnp.int32)))
    np.testing.assert_array_equal(ints, [1, 2, -1, 4, 5, 6, -1, 8, -1])

    column = lambda x: np.asarray(x)[:, None]
    stored = replay.Stored(
        *(column(x) for x in (data.obs, rows, data.reward, data.terminated, data.truncated, data.next_obs)),
        column(offline.next_actions(data, rows)),
    )
    buffer = replay.Buffer(stored, jnp.int32(0), jnp.int32(len(data)))
    _, ends = offline.episode_bounds(data)
    episode = np.asarray(data.episode)
    for n in (1, 3):
        batch = replay.sample(buffer, jax.random.key(n), 256, jnp.float32(0.9), n)
        for start, got in zip(np.asarray(batch.action)[:, 0].astype(int), np.asarray(batch.next_action)[:, 0]):
            last = min(start + n, ends[episode[start]]) - 1
            np.testing.assert_array_equal(got, following[last], err_msg=f"n={n}, start row {start}")


def test_rebrac_critic_target_subtracts_the_next_action_penalty(pendulum, tmp_path):
    config = td3.rebrac_config(
        env="Pendulum-v1", hidden=(8,), critic_bc=0.5, dataset=str(offline.save(pendulum, tmp_path / "p.npz"))
    )
    assert config.layer_norm and config.td3_bc
    learner = td3.init(config, jax.random.key(0)).learner
    batch = offline.sample(pendulum, "Pendulum-v1", jax.random.key(1), 64)
    data_next = np.asarray(batch.next_action)
    assert np.isnan(data_next).any() and np.isfinite(data_next).any()  # episode ends are in the batch
    key = jax.random.key(2)
    got = np.asarray(td3.critic_target(config, learner, batch, key))
    plain = np.asarray(td3.critic_target(config.replace(critic_bc=0.0), learner, batch, key))
    # the same smoothed target action a' (same key): rebuild it and the penalty by hand
    action = np.asarray(td3.actor_action(config, learner.target_actor, batch.next_obs))
    noise = np.clip(config.target_policy_noise * np.asarray(jax.random.normal(key, action.shape)), -0.5, 0.5)
    action = np.clip(action + noise, -1.0, 1.0)
    penalty = np.where(np.isnan(data_next[:, 0]), 0.0, ((action - np.nan_to_num(data_next)) ** 2).sum(-1))
    np.testing.assert_allclose(got, plain - np.asarray(batch.discount) * 0.5 * penalty, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="critic_bc"):
        td3.Config(env="Pendulum-v1", critic_bc=0.1)


def test_normalize_obs_standardizes_the_data_and_the_policy_alike(pendulum, tmp_path):
    path = str(offline.save(pendulum, tmp_path / "p.npz"))
    config = iql.Config(env="Pendulum-v1", hidden=(8,), dataset=path, normalize_obs=True)
    buffer = offpolicy.dataset_buffer(config)
    obs = np.asarray(buffer.data.obs)[:, 0]
    np.testing.assert_allclose(obs.mean(0), 0.0, atol=1e-4)
    raw = np.asarray(pendulum.obs)
    np.testing.assert_allclose(obs.std(0), raw.std(0) / (raw.std(0) + offpolicy.OBS_STD_FLOOR), rtol=1e-4)
    mean, std = raw.mean(0), raw.std(0) + offpolicy.OBS_STD_FLOOR
    np.testing.assert_allclose(
        np.asarray(buffer.data.next_obs)[:, 0], (np.asarray(pendulum.next_obs) - mean) / std, atol=1e-4
    )
    state = iql.init(config, jax.random.key(0))
    act = iql.policy(config, state, deterministic=True)
    probe = jnp.asarray(raw[:16])
    want = offpolicy.to_env_action(
        config, iql.policy_action(config, state.learner.actor, jnp.asarray((raw[:16] - mean) / std))
    )
    np.testing.assert_allclose(np.asarray(act(probe, jax.random.key(1))), np.asarray(want), rtol=1e-5, atol=1e-6)
    unnormalized = iql.policy(config.replace(normalize_obs=False), state, deterministic=True)
    assert not np.allclose(np.asarray(unnormalized(probe, jax.random.key(1))), np.asarray(want))
    with pytest.raises(ValueError, match="normalize_obs"):
        iql.Config(env="Pendulum-v1", normalize_obs=True)
