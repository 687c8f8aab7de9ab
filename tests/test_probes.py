"""Probe environments: registration and spaces, termination (never truncation), the stated optimal
values against scripted optimal policies, the documented Q-values against the env's rewards, and
(slow) that PPO's critic learns the value probes and PPO / DQN / SAC pick the optimal actions.

Learner checks train 2 seeds vmapped in one program with tiny networks; their measured margins
are in benchmarks/README.md (probes).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxlib import envs
from purejaxlib.algos import dqn, ppo, sac
from purejaxlib.envs import probes
from purejaxlib.networks import ActorCritic

NAMES = probes.names()
GAMMA = 0.9  # not 1, so probe 3's V(first obs) = gamma is told apart from its V(second obs) = 1
EPISODES = 64


def _step_fn(env, params):
    """gymnax's step is jitted with the env static, so this compiles once per env."""
    return lambda key, state, action: env.step(key, state, action, params)


def run_episode(env, params, key, policy):
    """One episode from a reset, stepping until it ends: (first obs, rewards, terminated flags,
    truncated flags, observations seen)."""
    reset_key, key = jax.random.split(key)
    obs, state = env.reset(reset_key, params)
    first, rewards, terms, truncs, seen = np.asarray(obs), [], [], [], [np.asarray(obs)]
    step = _step_fn(env, params)
    for _ in range(10):
        key, step_key = jax.random.split(key)
        obs_next, state, reward, terminated, truncated, _info = step(step_key, state, policy(obs))
        rewards.append(float(reward))
        terms.append(bool(terminated))
        truncs.append(bool(truncated))
        assert reward.dtype == jnp.float32 and terminated.dtype == jnp.bool_ and truncated.dtype == jnp.bool_
        if terminated or truncated:
            break
        obs = obs_next
        seen.append(np.asarray(obs))
    return first, rewards, terms, truncs, seen


def optimal_policy(env):
    return lambda obs: jnp.asarray(env.optimal_action(np.asarray(obs)))


# ---------------------------------------------------------------------------------------------
# registration, spaces, episode structure


def test_ten_probes_are_registered_with_the_documented_spaces():
    assert len(NAMES) == 10 and all(name in envs.list() for name in NAMES)
    for name in NAMES:
        env, _params = envs.make(name)
        assert env.name == name
        spec = envs.spec(name)
        assert spec.obs_shape == (1,)
        number = int(name[len("Probe")])
        if name.endswith("-continuous"):
            assert not spec.discrete and spec.action_shape == (1,)
            np.testing.assert_array_equal(spec.action_low, [-1.0])
            np.testing.assert_array_equal(spec.action_high, [1.0])
        else:
            assert spec.discrete and spec.num_actions == (2 if number >= 4 else 1)


@pytest.mark.parametrize("name", NAMES)
def test_scripted_optimal_policy_earns_the_stated_optimal_value(name):
    """Every episode terminates after the probe's length (1 step, or 2 for probe 3), is never
    truncated, and its discounted return equals optimal_value(first obs); the mean over episodes
    matches optimal_start_value (exactly for deterministic starts, within sampling error for
    the +-1 starts of probes 2 and 5)."""
    env, params = envs.make(name)
    policy = optimal_policy(env)
    length = 2 if name.startswith("Probe3") else 1
    returns, undiscounted, firsts = [], [], []
    for i in range(EPISODES):
        first, rewards, terms, truncs, _ = run_episode(env, params, jax.random.key(i), policy)
        assert len(rewards) == length, rewards
        assert terms == [False] * (length - 1) + [True] and not any(truncs)
        discounted = sum(GAMMA**t * r for t, r in enumerate(rewards))
        np.testing.assert_allclose(discounted, env.optimal_value(first, GAMMA), atol=1e-6)
        returns.append(discounted)
        undiscounted.append(sum(rewards))
        firsts.append(first[0])
    if name.startswith(("Probe2", "Probe5")):
        assert {-1.0, 1.0} == set(firsts)  # both starts occur
        std_err = np.std(returns) / np.sqrt(EPISODES) + 1e-9
        assert abs(np.mean(returns) - env.optimal_start_value(GAMMA)) < 4 * std_err
    else:
        np.testing.assert_allclose(np.mean(returns), env.optimal_start_value(GAMMA), atol=1e-6)
        np.testing.assert_allclose(np.mean(undiscounted), env.optimal_start_value(1.0), atol=1e-6)


def test_probe3_shows_zero_then_one():
    env, params = envs.make("Probe3-TwoStepDiscount")
    _, rewards, _, _, seen = run_episode(env, params, jax.random.key(0), optimal_policy(env))
    assert [float(o[0]) for o in seen] == [0.0, 1.0] and rewards == [0.0, 1.0]
    np.testing.assert_allclose(env.optimal_value(env.observations(), GAMMA), [GAMMA, 1.0])


def test_time_limit_below_the_episode_length_truncates_without_terminating():
    env, params = envs.make("Probe3-TwoStepDiscount", max_steps_in_episode=1)
    _, rewards, terms, truncs, _ = run_episode(env, params, jax.random.key(0), optimal_policy(env))
    assert rewards == [0.0] and terms == [False] and truncs == [True]


def test_auto_reset_keeps_the_final_observation():
    env, params = envs.make("Probe3-TwoStepDiscount")
    obs, state = env.reset(jax.random.key(0), params)
    step = _step_fn(env, params)
    obs, state, *_ = step(jax.random.key(1), state, 0)
    obs, state, reward, terminated, _truncated, info = step(jax.random.key(2), state, 0)
    assert terminated and float(reward) == 1.0
    assert float(info["final_observation"][0]) == 1.0 and float(obs[0]) == 0.0  # reset after the end


@pytest.mark.parametrize("name", [n for n in NAMES if n.startswith(("Probe4", "Probe5"))])
def test_documented_q_values_are_the_env_rewards(name):
    """One-step probes: Q*(obs, a) is the reward, for every observation and a range of actions;
    only the optimal action earns V* = 1."""
    env, params = envs.make(name)
    step = _step_fn(env, params)
    if env.continuous:
        actions = [np.array([a], np.float32) for a in np.linspace(-1.0, 1.0, 8)]
    else:
        actions = [np.int32(0), np.int32(1)]
    seen = set()
    for i in range(16):
        obs, state = env.reset(jax.random.key(i), params)
        seen.add(float(obs[0]))
        values = []
        for action in actions:
            _, _, reward, terminated, _, _ = step(jax.random.key(0), state, jnp.asarray(action))
            expected = float(env.optimal_q(np.asarray(obs), action, GAMMA))
            np.testing.assert_allclose(float(reward), expected, atol=1e-6)
            assert terminated
            values.append(expected)
        best = env.optimal_action(np.asarray(obs))
        np.testing.assert_allclose(env.optimal_value(np.asarray(obs), GAMMA), 1.0)
        if env.continuous:
            target = float(best[0])
            assert abs(target) == 0.5  # interior optimum, so mean-zero initial policies are not already optimal
            assert max(values) < 1.0  # the grid misses a*, and every action away from it earns less
        else:
            assert values[int(best)] == 1.0 and values[1 - int(best)] == -1.0
    if name.startswith("Probe5"):
        assert seen == {-1.0, 1.0}


def test_continuous_actions_are_clipped_to_the_box():
    """The raw env clips (make() adds a wrapper that rejects concrete out-of-box actions)."""
    env = probes.make_probe("Probe4-ActionReward-continuous")
    params = env.default_params
    _obs, state = env.reset(jax.random.key(0), params)
    step = _step_fn(env, params)
    far = step(jax.random.key(0), state, jnp.array([5.0]))[2]
    edge = step(jax.random.key(0), state, jnp.array([1.0]))[2]
    assert float(far) == float(edge) == pytest.approx(0.5)


def test_unknown_probe_name_is_rejected():
    with pytest.raises(ValueError, match="no probe named"):
        probes.make_probe("Probe6-Nothing")


# ---------------------------------------------------------------------------------------------
# learners (slow): 2 seeds vmapped in one compiled program per test


def _seeds(base: int = 0, count: int = 2) -> jax.Array:
    return jax.random.split(jax.random.key(base), count)


def _ppo_config(name: str, **overrides) -> ppo.Config:
    fields = dict(
        env=name,
        num_envs=8,
        num_steps=8,
        num_minibatches=2,
        update_epochs=4,
        total_timesteps=6400,
        hidden=(16, 16),
        lr=3e-3,
        anneal_lr=False,
        gamma=GAMMA,
        ent_coef=0.0,
    )
    return ppo.Config(**{**fields, **overrides})


def _ppo_values_and_actions(config: ppo.Config, obs: jax.Array):
    def run(key):
        state = ppo.train(config, key).state
        value = ppo.make_network(config).apply(state.params, obs, method=ActorCritic.value)
        return value, ppo.policy(config, state, deterministic=True)(obs, key)

    return jax.tree.map(np.asarray, jax.jit(jax.vmap(run))(_seeds()))


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES[:3])
def test_ppo_critic_learns_the_value_probes(name):
    """100 updates of 64 steps; with one action there is no policy to learn, so V must reach V*
    at every observation."""
    env, _ = envs.make(name)
    obs = jnp.asarray(env.observations())
    values, _ = _ppo_values_and_actions(_ppo_config(name), obs)
    np.testing.assert_allclose(
        values, np.broadcast_to(env.optimal_value(env.observations(), GAMMA), values.shape), atol=0.05
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", ["Probe5-ActionObservationReward", "Probe5-ActionObservationReward-continuous"])
def test_ppo_picks_the_optimal_action(name):
    """Discrete: the mode is the right action for each observation and V reaches 1. Continuous:
    the mean action is near a* = +-0.5."""
    env, _ = envs.make(name)
    obs = jnp.asarray(env.observations())
    values, actions = _ppo_values_and_actions(_ppo_config(name), obs)
    best = env.optimal_action(env.observations())
    if env.continuous:
        np.testing.assert_allclose(actions, np.broadcast_to(best, actions.shape), atol=0.1)
    else:
        np.testing.assert_array_equal(actions, np.broadcast_to(best, actions.shape))
        np.testing.assert_allclose(values, 1.0, atol=0.05)


OFF_POLICY = dict(
    total_timesteps=2048,
    num_envs=4,
    batch_size=32,
    buffer_size=1024,
    learning_starts=128,
    hidden=(16, 16),
    lr=3e-3,
    gamma=GAMMA,
)


@pytest.mark.slow
def test_dqn_picks_the_optimal_action_and_learns_both_q_values():
    name = "Probe5-ActionObservationReward"
    env, _ = envs.make(name)
    config = dqn.Config(env=name, **OFF_POLICY, n_step=1, target_update_interval=20, eps_fraction=0.3)
    obs = jnp.asarray(env.observations())

    def run(key):
        state = dqn.train(config, key).state
        q = dqn.make_network(config).apply(state.learner.params, obs)
        return q, dqn.policy(config, state, deterministic=True)(obs, key)

    q, actions = jax.tree.map(np.asarray, jax.jit(jax.vmap(run))(_seeds()))
    best = env.optimal_action(env.observations())
    np.testing.assert_array_equal(actions, np.broadcast_to(best, actions.shape))
    expected = np.stack([env.optimal_q(env.observations(), np.full(2, a), GAMMA) for a in (0, 1)], axis=-1)
    np.testing.assert_allclose(q, np.broadcast_to(expected, q.shape), atol=0.2)


@pytest.mark.slow
def test_sac_picks_the_optimal_action_and_its_critic_knows_it():
    """The tanh-Gaussian mode lands near a* = -0.5 / +0.5 and the critics put Q(obs, a*) near 1,
    Q(obs, -a*) (reward -1) well below it. Far from the policy's actions only the warm-up data
    trains the critic, so that value is only roughly -1."""
    name = "Probe5-ActionObservationReward-continuous"
    env, _ = envs.make(name)
    config = sac.Config(env=name, **OFF_POLICY, tau=0.05)
    obs = jnp.asarray(env.observations())
    best = jnp.asarray(env.optimal_action(env.observations()))

    def run(key):
        state = sac.train(config, key).state
        q_best = sac.critic_values(config, state.learner.critic, obs, best).min(axis=0)
        q_worst = sac.critic_values(config, state.learner.critic, obs, -best).min(axis=0)
        return sac.policy(config, state, deterministic=True)(obs, key), q_best, q_worst

    actions, q_best, q_worst = jax.tree.map(np.asarray, jax.jit(jax.vmap(run))(_seeds()))
    np.testing.assert_allclose(actions, np.broadcast_to(np.asarray(best), actions.shape), atol=0.1)
    np.testing.assert_allclose(q_best, 1.0, atol=0.2)
    assert np.all(q_worst < q_best - 1.5) and np.all(q_worst < -0.5), q_worst
