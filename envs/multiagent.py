"""Multi-agent environments: the protocol, its conformance check, and the row view the learners use.

**Protocol** (a :class:`MultiAgentEnv`; agents on a stacked leading axis ``A``, in ``env.agents`` order)::

    obs, state = env.reset(key, params)                          # obs [A, *obs_shape]
    obs, state, reward, terminated, truncated, info = env.step(key, state, actions, params)
    # actions [A, ...]; reward [A] float32; terminated, truncated [A] bool

- ``terminated[i]``: agent ``i``'s episode really ended at this step or before (it died, or the
  episode reached a terminal state); ``truncated[i]``: the episode was cut by its time limit while
  agent ``i`` was still going. Never both. An agent that ends before the episode does stays
  terminated until the whole episode ends (its steps are absorbing: learners bootstrap nothing
  there; in team-reward games such as SMAX it still receives the team's reward).
- ``info["episode_done"]`` (bool scalar): the whole episode ended here; the env has then reset, and
  ``obs`` is the next episode's first observation. ``info["final_observation"] [A, ...]`` is the
  true successor of the step's observations (before any reset), ``info["global_state"] [G]`` and
  ``info["final_global_state"]`` the same for the state a centralized critic sees, and
  ``info["action_mask"] / info["final_action_mask"] [A, n]`` (bool) the legal discrete actions.
- ``env.observation_space(params)`` and ``env.action_space(params)`` are one agent's spaces (every
  agent has the same; observations of different sizes are zero-padded to the largest);
  ``env.global_state(state, params) [G]`` and ``env.action_mask(state, params) [A, n]`` read a state.

**Rows** (:class:`AgentRows`): the single-agent protocol of :mod:`purejaxlib.envs` with the agents on
a leading axis, for parameter-shared learners (IPPO, MAPPO): each agent's observation is one row
``[one_hot(agent) (A), obs (D), global state (G), action mask (M)]`` (:class:`AgentLayout` names the
parts: the actor reads id + obs, a centralized critic id + global state). ``info["episode_end"]
[A]`` marks the end of the whole episode (episode statistics count episodes by it).
:class:`FoldAgents` folds ``[num_envs, A]`` into ``num_envs * A`` rows for the rollout.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from gymnax.environments import spaces

from purejaxlib.envs.wrappers import Wrapper


class AgentLayout(NamedTuple):
    """Where the parts of an agent row lie: ``[id (num_agents), obs (obs_dim), global (global_dim),
    mask (mask_dim)]``."""

    num_agents: int
    obs_dim: int
    global_dim: int
    mask_dim: int  # 0: no action mask

    @property
    def row_dim(self) -> int:
        return self.num_agents + self.obs_dim + self.global_dim + self.mask_dim

    def actor_input(self, rows: jax.Array) -> jax.Array:
        """What an agent acts on: ``[..., row_dim] -> [..., num_agents + obs_dim]`` (id + own obs)."""
        return rows[..., : self.num_agents + self.obs_dim]

    def critic_input(self, rows: jax.Array, centralized: bool) -> jax.Array:
        """A critic's input: id + own obs (independent), or id + global state (centralized)."""
        if not centralized:
            return self.actor_input(rows)
        start = self.num_agents + self.obs_dim
        return jnp.concatenate([rows[..., : self.num_agents], rows[..., start : start + self.global_dim]], -1)

    def action_mask(self, rows: jax.Array) -> jax.Array | None:
        """``[..., mask_dim]`` bool, or None when the env has no action mask."""
        if not self.mask_dim:
            return None
        return rows[..., self.row_dim - self.mask_dim :] > 0.5


class MultiAgentEnv:
    """Base of multi-agent envs (see the module docstring for the protocol)."""

    agents: tuple[str, ...] = ()
    max_steps_in_episode: int | None = None
    name: str = "multi-agent env"

    @property
    def num_agents(self) -> int:
        return len(self.agents)

    def global_state(self, state: Any, params: Any) -> jax.Array:
        raise NotImplementedError

    def action_mask(self, state: Any, params: Any) -> jax.Array:
        """``[A, n]`` bool legal actions; every action by default."""
        space = self.action_space(params)
        return jnp.ones((self.num_agents, int(space.n)), bool)

    def has_action_mask(self) -> bool:
        return False

    def global_state_space(self, params: Any) -> spaces.Box:
        size = int(jax.eval_shape(lambda: self.global_state(self.reset(jax.random.key(0), params)[1], params)).size)
        return spaces.Box(-jnp.inf, jnp.inf, (size,), jnp.float32)

    def observation_space(self, params: Any) -> Any:
        raise NotImplementedError

    def action_space(self, params: Any) -> Any:
        raise NotImplementedError

    def reset(self, key: jax.Array, params: Any) -> tuple[jax.Array, Any]:
        raise NotImplementedError

    def step(self, key: jax.Array, state: Any, actions: jax.Array, params: Any) -> tuple[Any, ...]:
        raise NotImplementedError


def one_hot_ids(num_agents: int) -> jax.Array:
    """``[A, A]`` float32: row ``i`` is agent ``i``'s id."""
    return jnp.eye(num_agents, dtype=jnp.float32)


class AgentRows:
    """A :class:`MultiAgentEnv` as a single-agent-protocol env whose outputs carry the agents on a
    leading axis: observations are agent rows ``[A, row_dim]`` (see :class:`AgentLayout`), rewards,
    ``terminated`` and ``truncated`` ``[A]``, actions ``[A, ...]``. ``observation_space`` and
    ``action_space`` are one row's / one agent's."""

    def __init__(self, env: MultiAgentEnv, params: Any):
        self.multiagent = env
        self.agents = tuple(env.agents)
        self.num_agents = len(self.agents)
        self.name = env.name
        self.max_steps_in_episode = env.max_steps_in_episode
        obs_dim = int(np.prod(env.observation_space(params).shape))
        global_dim = int(env.global_state_space(params).shape[0])
        mask_dim = int(env.action_space(params).n) if env.has_action_mask() else 0
        self.layout = AgentLayout(self.num_agents, obs_dim, global_dim, mask_dim)

    def observation_space(self, params: Any) -> spaces.Box:
        return spaces.Box(-jnp.inf, jnp.inf, (self.layout.row_dim,), jnp.float32)

    def action_space(self, params: Any) -> Any:
        return self.multiagent.action_space(params)

    def rows(self, obs: jax.Array, global_state: jax.Array, mask: jax.Array) -> jax.Array:
        """``obs [A, ...]``, ``global_state [G]``, ``mask [A, n]`` -> rows ``[A, row_dim]`` float32."""
        a = self.num_agents
        parts = [one_hot_ids(a), obs.reshape(a, -1).astype(jnp.float32)]
        parts.append(jnp.broadcast_to(global_state.astype(jnp.float32), (a, self.layout.global_dim)))
        if self.layout.mask_dim:
            parts.append(mask.astype(jnp.float32))
        return jnp.concatenate(parts, axis=-1)

    def reset(self, key: jax.Array, params: Any) -> tuple[jax.Array, Any]:
        obs, state = self.multiagent.reset(key, params)
        glob = self.multiagent.global_state(state, params)
        return self.rows(obs, glob, self.multiagent.action_mask(state, params)), state

    def step(self, key, state, action, params):
        obs, state, reward, terminated, truncated, info = self.multiagent.step(key, state, action, params)
        rows = self.rows(obs, info["global_state"], info["action_mask"])
        final = self.rows(info["final_observation"], info["final_global_state"], info["final_action_mask"])
        end = jnp.broadcast_to(info["episode_done"], (self.num_agents,))
        info = {**info, "final_observation": final, "episode_end": end}
        return rows, state, reward, terminated, truncated, info


class FoldAgents(Wrapper):
    """Over a :class:`purejaxlib.envs.VecEnv` of :class:`AgentRows`: ``[num_envs, A, ...]`` becomes
    ``num_envs * A`` rows (env-major: row ``e * A + i`` is agent ``i`` of env ``e``); actions
    ``[num_envs * A, ...]`` are unfolded for the envs."""

    def __init__(self, env: Any, num_agents: int):
        super().__init__(env)
        self.folded_agents = num_agents

    def _fold(self, tree: Any) -> Any:
        return jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]) if x.ndim >= 2 else x, tree)

    def reset(self, key: jax.Array, params: Any) -> tuple[jax.Array, Any]:
        obs, state = self._env.reset(key, params)
        return self._fold(obs), state

    def step(self, key, state, action, params):
        action = action.reshape((-1, self.folded_agents) + action.shape[1:])
        obs, state, reward, terminated, truncated, info = self._env.step(key, state, action, params)
        folded = self._fold((obs, reward, terminated, truncated))
        info = {k: self._fold(v) if k in _ROW_INFO else v for k, v in info.items()}
        return (*folded[:1], state, *folded[1:], info)


# info entries with one value per agent row (folded with the rows); others (e.g. global state) are per env
_ROW_INFO = ("final_observation", "episode_end", "episode_done", "episode_return", "episode_length")


class MultiAgentConformanceError(AssertionError):
    """A multi-agent env breaks the protocol; the message lists every rule it breaks."""


def check_multiagent(env: MultiAgentEnv, params: Any, *, num_steps: int = 64, key: jax.Array | None = None) -> dict:
    """Checks ``env`` against the multi-agent protocol with random legal actions under ``jit``.

    Rules: shapes ``[A, ...]`` of observations, rewards (finite float), terminated/truncated (bool,
    never both for one agent); ``final_observation`` equals the observation where the episode did not
    end; an agent, once terminated, stays terminated until the episode ends; at an
    episode's end every agent is terminated or truncated; masks ``[A, n]`` have a legal action for
    some agent (in turn-based games only the mover has one); ``global_state`` is ``[G]``. Returns
    facts seen (episodes, terminations).
    Raises :class:`MultiAgentConformanceError`.
    """
    key = jax.random.key(0) if key is None else key
    a = env.num_agents
    act_space = env.action_space(params)

    def rollout(key):
        reset_key, key = jax.random.split(key)
        obs, state = env.reset(reset_key, params)

        def body(carry, key):
            state, mask = carry
            act_key, step_key = jax.random.split(key)
            logits = jnp.where(mask, 0.0, -jnp.inf)
            actions = jax.random.categorical(act_key, logits, axis=-1)
            out = env.step(step_key, state, actions, params)
            info = out[5]
            keep = ("final_observation", "episode_done", "global_state", "final_global_state", "action_mask")
            return (out[1], info["action_mask"]), (out[0], *out[2:5], {k: info[k] for k in keep})

        mask0 = env.action_mask(state, params)
        _, outs = jax.lax.scan(body, (state, mask0), jax.random.split(key, num_steps))
        return obs, mask0, outs

    obs0, mask0, (obs, reward, term, trunc, info) = jax.tree.map(np.asarray, jax.jit(rollout)(key))
    problems = []
    obs_shape = tuple(env.observation_space(params).shape)
    if obs0.shape != (a, *obs_shape) or obs.shape != (num_steps, a, *obs_shape):
        problems.append(f"observations must be [A={a}, *{obs_shape}], got {obs0.shape[1:]} / {obs.shape[1:]}")
    if reward.shape != (num_steps, a) or not np.issubdtype(reward.dtype, np.floating):
        problems.append(f"reward must be float [A={a}], got {reward.dtype} {reward.shape[1:]}")
    elif not np.all(np.isfinite(reward)):
        problems.append("rewards are not finite")
    for name, flag in (("terminated", term), ("truncated", trunc)):
        if flag.shape != (num_steps, a) or flag.dtype != np.bool_:
            problems.append(f"{name} must be bool [A={a}], got {flag.dtype} {flag.shape[1:]}")
    if problems:
        raise MultiAgentConformanceError(f"{env.name} fails:\n  - " + "\n  - ".join(problems))
    done = info["episode_done"]
    if np.any(term & trunc):
        problems.append("an agent is both terminated and truncated at one step")
    if np.any(done & ~np.all(term | trunc, axis=-1)):
        problems.append("an episode ended with an agent neither terminated nor truncated")
    if np.any(~done[:, None] & trunc):
        problems.append("an agent was truncated while its episode went on (truncation is the episode's time limit)")
    absorbing = term[:-1] & ~done[:-1, None]  # ended before the episode: the next step must stay ended
    if np.any(absorbing & ~term[1:]):
        problems.append("an agent that terminated before its episode ended came back before the episode's end")
    if not np.array_equal(info["final_observation"][~done], obs[~done]):
        problems.append("final_observation differs from the observation on a step that did not end the episode")
    if info["global_state"].ndim != 2 or info["final_global_state"].shape != info["global_state"].shape:
        problems.append(f"global_state must be one vector [G] per step, got {info['global_state'].shape[1:]}")
    masks = np.concatenate([mask0[None], info["action_mask"]])
    if isinstance(act_space, spaces.Discrete) and masks.shape[-2:] != (a, int(act_space.n)):
        problems.append(f"action_mask must be [A={a}, n={int(act_space.n)}], got {masks.shape[1:]}")
    elif not np.all(masks.any(-1).any(-1)):
        problems.append("a step where no agent has a legal action")
    if problems:
        raise MultiAgentConformanceError(f"{env.name} fails {len(problems)} rule(s):\n  - " + "\n  - ".join(problems))
    return {"episodes_ended": int(done.sum()), "terminations": int(term.sum()), "steps": num_steps}
