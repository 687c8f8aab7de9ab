"""Wrappers on the gymnax 1.x protocol.

Single-env wrappers keep the protocol ``reset(key, params) -> (obs, state)`` and
``step(key, state, action, params) -> (obs, state, reward, terminated, truncated, info)``.
:class:`VecEnv` vmaps a single env over ``num_envs``; the normalization wrappers sit on top of a
``VecEnv`` because their statistics are shared by the whole batch.

Every wrapper that changes observations also changes ``info["final_observation"]`` the same way,
so a value bootstrapped on truncation sees what the agent would have seen.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import spaces

from purejaxlib.normalization import RunningStats, init_stats, normalize, update_stats


class Wrapper:
    """Forwards everything not overridden to the wrapped env."""

    def __init__(self, env: Any):
        self._env = env

    def __getattr__(self, name: str) -> Any:
        return getattr(self._env, name)

    @property
    def unwrapped(self) -> Any:
        return getattr(self._env, "unwrapped", self._env)


class FlattenObservation(Wrapper):
    """Reshapes observations to 1-D ``[obs_dim]`` float32 vectors."""

    def observation_space(self, params: Any) -> spaces.Box:
        inner = self._env.observation_space(params)
        size = math.prod(inner.shape)
        return spaces.Box(
            jnp.broadcast_to(inner.low, inner.shape).reshape(-1).astype(jnp.float32),
            jnp.broadcast_to(inner.high, inner.shape).reshape(-1).astype(jnp.float32),
            (size,),
            jnp.float32,
        )

    def reset(self, key: jax.Array, params: Any) -> tuple[jax.Array, Any]:
        obs, state = self._env.reset(key, params)
        return jnp.reshape(obs, (-1,)).astype(jnp.float32), state

    def step(self, key, state, action, params):
        obs, state, reward, terminated, truncated, info = self._env.step(key, state, action, params)
        info = {**info, "final_observation": jnp.reshape(info["final_observation"], (-1,)).astype(jnp.float32)}
        return jnp.reshape(obs, (-1,)).astype(jnp.float32), state, reward, terminated, truncated, info


@struct.dataclass
class EpisodeStatsState:
    env_state: Any
    episode_return: jax.Array  # running return of the current episode
    episode_length: jax.Array
    last_return: jax.Array  # return of the most recent finished episode
    last_length: jax.Array


class EpisodeStatistics(Wrapper):
    """Tracks undiscounted episode return and length.

    ``info["episode_done"]`` marks steps where an episode ended (terminated or truncated);
    ``info["episode_return"]`` / ``info["episode_length"]`` hold that episode's totals there,
    and the last finished episode's totals elsewhere.
    """

    def reset(self, key, params):
        obs, env_state = self._env.reset(key, params)
        zero_f, zero_i = jnp.float32(0.0), jnp.int32(0)
        return obs, EpisodeStatsState(env_state, zero_f, zero_i, zero_f, zero_i)

    def step(self, key, state: EpisodeStatsState, action, params):
        obs, env_state, reward, terminated, truncated, info = self._env.step(
            key, state.env_state, action, params
        )
        done = jnp.logical_or(terminated, truncated)
        ep_return = state.episode_return + reward.astype(jnp.float32)
        ep_length = state.episode_length + 1
        last_return = jnp.where(done, ep_return, state.last_return)
        last_length = jnp.where(done, ep_length, state.last_length)
        new_state = EpisodeStatsState(
            env_state,
            jnp.where(done, 0.0, ep_return),
            jnp.where(done, 0, ep_length),
            last_return,
            last_length,
        )
        info = {**info, "episode_done": done, "episode_return": last_return, "episode_length": last_length}
        return obs, new_state, reward, terminated, truncated, info


class ClipAction(Wrapper):
    """Clips continuous actions into the action space's bounds before the env sees them."""

    def step(self, key, state, action, params):
        space = self._env.action_space(params)
        return self._env.step(key, state, jnp.clip(action, space.low, space.high), params)


class VecEnv(Wrapper):
    """``num_envs`` copies of a single env, stepped together with ``vmap``; params are shared."""

    def __init__(self, env: Any, num_envs: int):
        super().__init__(env)
        self.num_envs = num_envs

    def reset(self, key: jax.Array, params: Any) -> tuple[jax.Array, Any]:
        keys = jax.random.split(key, self.num_envs)
        return jax.vmap(self._env.reset, in_axes=(0, None))(keys, params)

    def step(self, key, state, action, params):
        """``action`` is ``[num_envs, ...]``; outputs carry a leading ``num_envs`` axis."""
        keys = jax.random.split(key, self.num_envs)
        return jax.vmap(self._env.step, in_axes=(0, 0, 0, None))(keys, state, action, params)


@struct.dataclass
class NormObsState:
    env_state: Any
    stats: RunningStats


class NormalizeObservation(Wrapper):
    """Normalizes batched observations by running statistics shared over the env batch."""

    def reset(self, key, params):
        obs, env_state = self._env.reset(key, params)
        stats = update_stats(init_stats(obs.shape[1:]), obs)
        return normalize(stats, obs), NormObsState(env_state, stats)

    def step(self, key, state: NormObsState, action, params):
        obs, env_state, reward, terminated, truncated, info = self._env.step(
            key, state.env_state, action, params
        )
        stats = update_stats(state.stats, obs)
        info = {**info, "final_observation": normalize(stats, info["final_observation"])}
        return normalize(stats, obs), NormObsState(env_state, stats), reward, terminated, truncated, info


@struct.dataclass
class NormRewardState:
    env_state: Any
    discounted_return: jax.Array  # [num_envs]
    stats: RunningStats


class NormalizeReward(Wrapper):
    """Scales batched rewards by the running std of the discounted return (not centred).

    ``gamma`` may be a traced value: this wrapper is built inside the training function.
    """

    def __init__(self, env: Any, gamma: jax.Array | float):
        super().__init__(env)
        self.gamma = gamma

    def reset(self, key, params):
        obs, env_state = self._env.reset(key, params)
        n = obs.shape[0]
        return obs, NormRewardState(env_state, jnp.zeros((n,), jnp.float32), init_stats(()))

    def step(self, key, state: NormRewardState, action, params):
        obs, env_state, reward, terminated, truncated, info = self._env.step(
            key, state.env_state, action, params
        )
        done = jnp.logical_or(terminated, truncated)
        ret = state.discounted_return * self.gamma + reward
        stats = update_stats(state.stats, ret)
        scaled = reward / jnp.sqrt(stats.var + 1e-8)
        new_state = NormRewardState(env_state, jnp.where(done, 0.0, ret), stats)
        return obs, new_state, scaled, terminated, truncated, info
