"""Adapters for outside JAX suites (craftax, jumanji, navix, xminigrid): each suite's own step output
against ours, step by step from the same state, on episodes that end both ways; registry names; a
missing extra names its install command. Conformance (envs.check) is in tests/test_conformance.py."""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxlib import envs
from purejaxlib.envs import craftax_adapter, jumanji_adapter, navix_adapter, xminigrid_adapter

NONE, TIME_LIMIT, REAL_END = 0, 1, 2


def _lockstep(env, params, raw_step, num_envs: int, num_steps: int, seed: int = 0):
    """Steps our env and, from the same pre-step state, the suite's own step (``raw_step(inner, action)
    -> (obs, reward, kind)``, kind 0 running / 1 its time limit / 2 a real end), for ``num_envs`` x
    ``num_steps`` random actions. Returns ours (reward, terminated, truncated, final_obs) and the
    suite's (obs, reward, kind), each ``[num_steps, num_envs, ...]``."""
    keys = jax.random.split(jax.random.key(seed), num_envs)
    space = env.action_space(params)

    def one(key):
        _, state = env.reset(key, params)

        def body(state, key):
            act_key, step_key = jax.random.split(key)
            action = space.sample(act_key)
            raw = raw_step(state.inner, action)
            _, state, reward, terminated, truncated, info = env.step(step_key, state, action, params)
            return state, ((reward, terminated, truncated, info["final_observation"]), raw)

        return jax.lax.scan(body, state, jax.random.split(key, num_steps))[1]

    ours, raw = jax.jit(jax.vmap(one))(keys)
    return jax.tree.map(np.asarray, ours), jax.tree.map(np.asarray, raw)


def _assert_mapping(ours, raw):
    reward, terminated, truncated, final_obs = ours
    raw_obs, raw_reward, kind = raw
    assert (kind == REAL_END).any() and (kind == TIME_LIMIT).any(), "the rollout must end episodes both ways"
    np.testing.assert_array_equal(terminated, kind == REAL_END)
    np.testing.assert_array_equal(terminated | truncated, kind != NONE)
    np.testing.assert_array_equal(truncated & ~terminated, kind == TIME_LIMIT)
    np.testing.assert_allclose(reward, raw_reward, rtol=1e-6)
    np.testing.assert_array_equal(final_obs, np.asarray(raw_obs, np.float32).reshape(final_obs.shape))


def _dm_kind(step_type, discount):
    """dm_env-style: a last step (type 2) with discount 0 is a real end, with discount 1 a time limit."""
    return jnp.where(step_type == 2, jnp.where(discount == 0.0, REAL_END, TIME_LIMIT), NONE)


def test_navix_step_types_map_to_terminated_and_truncated():
    pytest.importorskip("navix", reason="navix is the optional extra navix")
    env = navix_adapter.NavixEnv("Navix-Empty-5x5-v0", max_steps=20, observation="symbolic")

    def raw(timestep, action):
        nxt = env.navix.step(timestep, action)
        return nxt.observation, nxt.reward, nxt.step_type  # navix: 1 truncation, 2 termination

    _assert_mapping(*_lockstep(env, env.default_params, raw, num_envs=32, num_steps=60))


def test_xminigrid_last_steps_map_by_discount():
    pytest.importorskip("xminigrid", reason="xminigrid is the optional extra xminigrid")
    import xminigrid

    env = xminigrid_adapter.XMiniGridEnv("MiniGrid-Empty-5x5")
    env.inner_params = env.inner_params.replace(max_steps=10)  # xminigrid's own limit, to see it truncate

    def raw(timestep, action):
        nxt = env.xminigrid.step(env.inner_params, timestep, action)
        return nxt.observation, nxt.reward, _dm_kind(nxt.step_type, nxt.discount)

    assert xminigrid.types.StepType.LAST == xminigrid_adapter.LAST
    _assert_mapping(*_lockstep(env, env.default_params, raw, num_envs=32, num_steps=30))


def test_jumanji_time_limits_truncate_though_jumanji_ends_them_with_discount_0():
    """Snake ends an episode at its ``time_limit`` as it ends a collision (a last step, discount 0):
    its own step counter tells them apart, and so does ours."""
    jumanji = pytest.importorskip("jumanji", reason="jumanji is the optional extra jumanji")
    env = jumanji_adapter.JumanjiEnv("Snake-v1")
    env.jumanji = jumanji.make("Snake-v1", num_rows=6, num_cols=6, time_limit=12)  # collisions and time limits
    env.time_limit = 12

    def raw(state, action):
        after, timestep = env.jumanji.step(state, action)
        assert_discount = _dm_kind(timestep.step_type, timestep.discount)  # jumanji: 2 (a real end) both ways
        kind = jnp.where(assert_discount != NONE, jnp.where(after.step_count >= 12, TIME_LIMIT, REAL_END), NONE)
        return envs.suites.flatten_observation(timestep.observation), timestep.reward, kind

    _assert_mapping(*_lockstep(env, env.default_params, raw, num_envs=32, num_steps=30))


def test_jumanji_multidiscrete_actions_are_one_discrete_row_major():
    pytest.importorskip("jumanji", reason="jumanji is the optional extra jumanji")
    env = jumanji_adapter.JumanjiEnv("Minesweeper-v0")
    assert env.sizes == (10, 10) and env.num_actions == 100
    np.testing.assert_array_equal(envs.suites.unravel_action(jnp.int32(37), env.sizes), [3, 7])
    _, state = env.reset(jax.random.key(0), env.default_params)
    _, after, *_ = env.step(jax.random.key(1), state, jnp.int32(37), env.default_params)
    assert bool(after.inner.board[3, 7] >= 0)  # the cell (3, 7) was revealed


@pytest.fixture(scope="module")
def craftax_cases():
    """Four starts of one craftax world (time 0 or 4 of a 5-step limit; health 9 or 0), each stepped
    once by the adapter's ``suite_step`` and by craftax's own ``step_env``, in one vmapped program
    each (the auto-reset around them is gymnax's, checked by the conformance test)."""
    pytest.importorskip("craftax", reason="craftax is the optional extra craftax")
    env = craftax_adapter.CraftaxEnv("Craftax-Classic-Symbolic-v1")
    params = env.default_params.replace(max_steps_in_episode=5)
    inner_params = params.inner.replace(max_timesteps=5)
    _, world = jax.jit(env.craftax.reset_env)(jax.random.key(0), inner_params)
    times, health = jnp.array([0, 4, 4, 1]), jnp.array([0.0, 9.0, 0.0, 9.0])

    def start(time, health):
        return world.replace(timestep=time, player_health=jnp.asarray(health, world.player_health.dtype))

    def both(time, health):
        inner = start(time, health)
        _, _, _, terminated, limit, info = env.suite_step(jax.random.key(1), inner, 0, params, time + 1)
        raw_done = env.craftax.step_env(jax.random.key(1), inner, 0, inner_params)[3]
        return terminated, limit, raw_done, info

    return jax.tree.map(np.asarray, jax.jit(jax.vmap(both))(times, health))


def test_craftax_death_terminates_and_its_step_counter_truncates(craftax_cases):
    """Craftax's single ``done`` split by its step counter: death is terminated, the limit with the
    player alive truncated, death at the limit both; craftax's own ``done`` agrees each time."""
    terminated, limit, raw_done, _ = craftax_cases
    np.testing.assert_array_equal(terminated, [True, False, True, False])
    np.testing.assert_array_equal(limit, [False, True, True, False])
    np.testing.assert_array_equal(raw_done, terminated | limit)


def test_craftax_reports_achievements_when_an_episode_ends(craftax_cases):
    *_, info = craftax_cases
    names = [k for k in info if k.startswith("Achievements/")]
    assert len(names) == 22 and "Achievements/collect_wood" in names and info[names[0]].shape == (4,)


@pytest.mark.parametrize(
    "module,package,listed",
    [
        (navix_adapter, "navix", lambda m: sorted(m.registry())),
        (
            xminigrid_adapter,
            "xminigrid",
            lambda m: sorted(n for n in m.registered_environments() if n.startswith("MiniGrid-")),
        ),
    ],
)
def test_registered_names_are_the_suites_own(module, package, listed):
    suite = pytest.importorskip(package, reason=f"{package} is an optional extra")
    assert list(module.NAMES) == listed(suite)
    registered = [n for n in envs.list() if n.startswith(f"{module.EXTRA}/")]
    assert registered == sorted(f"{module.EXTRA}/{n}" for n in module.NAMES)


def test_jumanji_subset_is_registered_in_jumanji():
    jumanji = pytest.importorskip("jumanji", reason="jumanji is the optional extra jumanji")
    assert set(jumanji_adapter.NAMES) <= set(jumanji.registered_environments())
    assert "jumanji/Sokoban-v0" not in envs.list()  # it downloads its levels


@pytest.mark.parametrize(
    "name,package",
    [
        ("craftax/Craftax-Pixels-v1", "craftax"),
        ("jumanji/MMST-v0", "jumanji"),
        ("navix/Navix-KeyCorridorS6R3-v0", "navix"),
        ("xminigrid/MiniGrid-MemoryS128", "xminigrid"),
    ],
)
def test_a_missing_extra_names_the_install_command(monkeypatch, name, package):
    for module in [m for m in sys.modules if m == package or m.startswith(f"{package}.")] or [package]:
        monkeypatch.setitem(sys.modules, module, None)  # imports fail as if it were not installed
    envs.clear_cache()
    with pytest.raises(ImportError, match=rf"pip install 'purejaxlib\[{package}\]'"):
        envs.make(name)
    assert name in envs.list()
