"""JaxMARL's environments (MPE, SMAX) on the multi-agent protocol of :mod:`purejaxlib.envs.multiagent`.

JaxMARL's step is the old five-value one: dicts keyed by agent, one ``done`` per agent and
``done["__all__"]`` for the episode, and it auto-resets without keeping the final observation. The
adapter calls JaxMARL's ``step_env`` (the transition without the reset), stacks the dicts in
``env.agents`` order, resets itself (so ``info["final_observation"]`` is the true successor), and
splits ``done``:

- MPE: every episode ends at the time limit (``step >= max_steps``): each agent is *truncated* there.
- SMAX (against JaxMARL's heuristic enemy): an ally's ``done`` is "dead"; the episode ends when a
  team is wiped out (a real end: every ally *terminated*) or at ``max_steps`` (allies alive then are
  *truncated*, dead ones stay terminated).

Registered names: ``jaxmarl/<JaxMARL id>`` for the MPE scenarios whose agents share one action space
(``jaxmarl/MPE_simple_spread_v3`` ...), and ``jaxmarl/smax`` with the options ``scenario`` ("3m",
"2s3z", "5m_vs_6m", ...; JaxMARL's map names) and ``max_steps``. jaxmarl needs Python >= 3.11 and
is the optional extra ``marl``; it prints to stdout when imported, which is kept out of ours.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import spaces

from purejaxlib.envs.multiagent import MultiAgentEnv
from purejaxlib.envs.suites import quiet

INSTALL = "pip install 'purejaxlib[marl]' (jaxmarl; Python >= 3.11)"

# MPE scenarios with discrete actions whose agents all have one action space (parameter sharing needs
# that); observations of different sizes are zero-padded
MPE = (
    "MPE_simple_v3",
    "MPE_simple_spread_v3",
    "MPE_simple_tag_v3",
    "MPE_simple_adversary_v3",
    "MPE_simple_push_v3",
    "MPE_simple_reference_v3",
)


quiet_stdout = quiet  # jaxmarl's import prints (at the fd level): kept out of ours


@functools.cache
def jaxmarl() -> Any:
    """The jaxmarl package, imported with its stdout prints swallowed."""
    try:
        with quiet_stdout():
            import jaxmarl as module
    except ImportError as err:
        raise ImportError(f"JaxMARL environments need jaxmarl: {INSTALL}") from err
    return module


@struct.dataclass
class NoParams:
    """JaxMARL envs keep their settings on the env object: nothing is traced."""


def _space(space: Any) -> Any:
    """A JaxMARL space as a gymnax one."""
    if hasattr(space, "n"):
        return spaces.Discrete(int(space.n))
    return spaces.Box(jnp.asarray(space.low), jnp.asarray(space.high), tuple(space.shape), jnp.float32)


def _describe(space: Any) -> str:
    return f"Discrete({int(space.n)})" if hasattr(space, "n") else f"Box(shape={tuple(space.shape)})"


class JaxMARLEnv(MultiAgentEnv):
    """One JaxMARL env on our protocol.

    ``agent_ended(raw_state) -> [A] bool``: agents out before the episode (SMAX: dead);
    ``real_end(raw_state) -> bool``: the episode reached a terminal state (not a time limit);
    ``global_fn(raw_state, obs [A, D]) -> [G]``: the centralized critic's view.
    """

    def __init__(
        self,
        env: Any,
        name: str,
        *,
        agent_ended: Callable[[Any], jax.Array] | None = None,
        real_end: Callable[[Any], jax.Array] | None = None,
        global_fn: Callable[[Any, jax.Array], jax.Array] | None = None,
        masked: bool = False,
    ):
        self.raw = env
        self.name = name
        self.agents = tuple(env.agents)
        # MPE and SMAX end an episode when the step counter *before* the step reaches max_steps
        self.max_steps_in_episode = int(env.max_steps) + 1
        spaces_by_agent = {a: env.action_space(a) for a in self.agents}
        kinds = {_describe(s) for s in spaces_by_agent.values()}
        if len(kinds) > 1:
            listed = ", ".join(f"{a}: {_describe(s)}" for a, s in spaces_by_agent.items())
            raise ValueError(
                f"{name}: parameter sharing needs one action space for every agent, but the agents differ ({listed})"
            )
        self._action_space = _space(spaces_by_agent[self.agents[0]])
        self._obs_dim = max(int(jnp.prod(jnp.asarray(env.observation_space(a).shape))) for a in self.agents)
        self._agent_ended = agent_ended
        self._real_end = real_end
        self._global_fn = global_fn or (lambda state, obs: obs.reshape(-1))
        self._masked = masked

    def observation_space(self, params: Any) -> spaces.Box:
        return spaces.Box(-jnp.inf, jnp.inf, (self._obs_dim,), jnp.float32)

    def action_space(self, params: Any) -> Any:
        return self._action_space

    def has_action_mask(self) -> bool:
        return self._masked

    def stack_obs(self, obs: dict[str, jax.Array]) -> jax.Array:
        """JaxMARL's observation dict -> ``[A, obs_dim]`` float32 (zero-padded)."""
        rows = [jnp.ravel(obs[a]).astype(jnp.float32) for a in self.agents]
        return jnp.stack([jnp.pad(r, (0, self._obs_dim - r.shape[0])) for r in rows])

    def global_state(self, state: Any, params: Any) -> jax.Array:
        return self._global_fn(state, self.stack_obs(self.raw.get_obs(state))).astype(jnp.float32)

    def action_mask(self, state: Any, params: Any) -> jax.Array:
        if not self._masked:
            return super().action_mask(state, params)
        avail = self.raw.get_avail_actions(state)
        return jnp.stack([avail[a] for a in self.agents]).astype(bool)

    def reset(self, key: jax.Array, params: Any) -> tuple[jax.Array, Any]:
        obs, state = self.raw.reset(key)
        return self.stack_obs(obs), state

    def step(self, key, state, actions, params):
        step_key, reset_key = jax.random.split(key)
        act = {a: actions[i] for i, a in enumerate(self.agents)}
        obs, next_state, reward, done, _ = self.raw.step_env(step_key, state, act)
        obs = self.stack_obs(obs)
        episode_done = jnp.asarray(done["__all__"], bool)
        ended = jnp.zeros(self.num_agents, bool) if self._agent_ended is None else self._agent_ended(next_state)
        real = jnp.bool_(False) if self._real_end is None else self._real_end(next_state)
        terminated = ended | (episode_done & real)
        truncated = episode_done & ~terminated
        final_global = self._global_fn(next_state, obs).astype(jnp.float32)
        final_mask = self.action_mask(next_state, params)
        reset_obs, reset_state = self.reset(reset_key, params)
        pick = lambda new, old: jax.tree.map(lambda n, o: jnp.where(episode_done, n, o), new, old)
        state_out = pick(reset_state, next_state)
        obs_out = pick(reset_obs, obs)
        info = {
            "final_observation": obs,
            "episode_done": episode_done,
            "global_state": self.global_state(state_out, params),
            "final_global_state": final_global,
            "action_mask": self.action_mask(state_out, params),
            "final_action_mask": final_mask,
        }
        reward = jnp.stack([reward[a] for a in self.agents]).astype(jnp.float32)
        return obs_out, state_out, reward, terminated, truncated, info


def make_env(env_id: str, **kwargs: Any) -> JaxMARLEnv:
    """A JaxMARL env by its JaxMARL id (``"MPE_simple_spread_v3"``, ``"HeuristicEnemySMAX"`` ...), keyword
    arguments passed to JaxMARL; refuses agents with different action spaces naming them."""
    module = jaxmarl()
    if env_id in ("SMAX", "HeuristicEnemySMAX"):
        return smax(**kwargs)
    with quiet_stdout():
        env = module.make(env_id, **kwargs)
    return JaxMARLEnv(env, f"jaxmarl/{env_id}")


def smax(scenario: str = "3m", max_steps: int = 100, **kwargs: Any) -> JaxMARLEnv:
    """SMAX ``scenario`` against JaxMARL's heuristic enemy, with JaxMARL's baseline settings (enemies
    shoot, ``walls_cause_death``, ``see_enemy_actions``); ``kwargs`` go to JaxMARL."""
    module = jaxmarl()
    from jaxmarl.environments.smax import map_name_to_scenario

    try:
        chosen = map_name_to_scenario(scenario)
    except KeyError as err:
        raise ValueError(f"unknown SMAX scenario {scenario!r} (JaxMARL's map names, e.g. '3m', '2s3z')") from err
    settings = dict(see_enemy_actions=True, walls_cause_death=True, attack_mode="closest", max_steps=max_steps)
    with quiet_stdout():
        env = module.make("HeuristicEnemySMAX", scenario=chosen, **{**settings, **kwargs})
    allies = env.num_allies

    def agent_ended(state: Any) -> jax.Array:
        return ~state.state.unit_alive[:allies]

    def real_end(state: Any) -> jax.Array:
        alive = state.state.unit_alive
        return ~jnp.any(alive[:allies]) | ~jnp.any(alive[allies:])

    return JaxMARLEnv(
        env,
        f"jaxmarl/smax:{scenario}",
        agent_ended=agent_ended,
        real_end=real_end,
        global_fn=lambda state, obs: env.get_world_state(state),
        masked=True,
    )


def mpe_factory(env_id: str) -> Callable[..., tuple[Any, Any]]:
    def factory() -> tuple[Any, Any]:
        return make_env(env_id), NoParams()

    return factory


def smax_factory(scenario: str = "3m", max_steps: int = 100) -> tuple[Any, Any]:
    return smax(scenario, max_steps), NoParams()
