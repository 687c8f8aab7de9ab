"""Two-player board games from pgx on the multi-agent protocol (agents on a leading axis ``A = 2``).

``make_game("pgx/tic_tac_toe")`` (or ``"pgx/connect_four"``) wraps ``pgx.make(...)``::

    game = make_game("pgx/tic_tac_toe")
    obs, state = game.reset(key, game.default_params)          # obs [2, 3, 3, 2] float32
    obs, state, reward, terminated, truncated, info = game.step(key, state, actions, game.default_params)

Agent ``i`` (``"player_i"``) is pgx's player id ``i``, and ``obs[i]`` is ``pgx.observe(state, i)``:
the board from that player's side (plane 0 its own stones, plane 1 the opponent's). pgx draws at
random which player id moves first, and this adapter keeps that: ``info["current_player"]`` (and
``state.current_player``) say whose move it is. A step takes one action per agent ``[2]`` and applies
only the mover's; the other is ignored. An illegal move by the mover ends the game with the mover
losing (-1, the opponent +1), as in pgx.

The state is pgx's own state (a pytree), so search (AlphaZero, :mod:`purejaxlib.algos.alphazero`)
can step the true game from it through ``game.pgx_env``.

Needs the optional extra: ``pip install 'purejaxlib[games]'``.
"""

from __future__ import annotations

import warnings
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import spaces

from purejaxlib.envs.multiagent import MultiAgentEnv
from purejaxlib.names import close_matches

INSTALL = "two-player games need pgx: pip install 'purejaxlib[games]'"

GAMES: dict[str, tuple[str, int]] = {
    "pgx/tic_tac_toe": ("tic_tac_toe", 9),
    "pgx/connect_four": ("connect_four", 42),
}
"""Game names, each with its pgx env id and the most moves a game can last."""

AGENTS = ("player_0", "player_1")


@struct.dataclass
class PgxParams:
    """The games have no numeric parameters; ``max_steps_in_episode`` is the longest game (static)."""

    max_steps_in_episode: int = struct.field(pytree_node=False, default=0)


class PgxGame(MultiAgentEnv):
    """A pgx two-player game: ``reset``/``step`` with agents stacked on a leading axis of 2.

    ``info`` of :meth:`step`:

    - ``final_observation`` ``[2, *obs_shape]``: the observations after this move, before an
      auto-reset (equal to ``obs`` when the game goes on);
    - ``current_player`` int32: the agent to move in the returned ``obs`` (after a reset: in the new game);
    - ``action_mask`` ``[2, num_actions]`` bool: the legal moves in the row of the agent to move,
      all False in the other row (it has no move to make);
    - ``episode_done`` bool: this move ended the game (terminated or truncated);
    - ``global_state`` / ``final_global_state`` and ``final_action_mask``: the protocol's
      (:mod:`purejaxlib.envs.multiagent`), so ``purejaxlib.envs.make`` gives its agent rows.
    """

    agents: tuple[str, ...] = AGENTS
    num_agents: int = 2

    def __init__(self, name: str):
        try:  # an optional extra, imported when a game is made (not with purejaxlib.envs)
            import pgx
        except ImportError as err:
            raise ImportError(INSTALL) from err
        self.name = name
        env_id, max_len = GAMES[name]
        self.pgx_env = pgx.make(env_id)
        self.max_game_length = self.max_steps_in_episode = max_len
        self.num_actions = int(self.pgx_env.num_actions)
        self.obs_shape = tuple(int(d) for d in self.pgx_env.observation_shape)

    @property
    def default_params(self) -> PgxParams:
        return PgxParams(max_steps_in_episode=self.max_game_length)

    def observation_space(self, params: Any) -> spaces.Box:
        """One agent's observation: ``obs_shape`` planes of 0/1 (float32)."""
        return spaces.Box(0.0, 1.0, self.obs_shape, jnp.float32)

    def action_space(self, params: Any) -> spaces.Discrete:
        """One agent's move: a cell (tic-tac-toe) or a column (connect four)."""
        return spaces.Discrete(self.num_actions)

    def observe(self, state: Any, player: jax.Array | int) -> jax.Array:
        """The board as pgx player id ``player`` sees it: ``[*obs_shape]`` float32."""
        with warnings.catch_warnings():  # pgx deprecates the argument, but it is the per-player view
            warnings.simplefilter("ignore", DeprecationWarning)
            return self.pgx_env.observe(state, jnp.int32(player)).astype(jnp.float32)

    def observe_all(self, state: Any) -> jax.Array:
        """Every agent's observation: ``[2, *obs_shape]`` float32."""
        return jnp.stack([self.observe(state, i) for i in range(self.num_agents)])

    def has_action_mask(self) -> bool:
        return True

    def action_mask(self, state: Any, params: Any = None) -> jax.Array:
        """``[2, num_actions]`` bool: pgx's legal moves in the mover's row, False in the other."""
        mover = jnp.arange(self.num_agents) == state.current_player
        return mover[:, None] & state.legal_action_mask[None, :]

    def global_state(self, state: Any, params: Any) -> jax.Array:
        """A centralized critic's input ``[G]``: player 0's view flattened, then one-hot of the mover
        (``G = prod(obs_shape) + 2``)."""
        mover = jax.nn.one_hot(state.current_player, self.num_agents, dtype=jnp.float32)
        return jnp.concatenate([self.observe(state, 0).reshape(-1), mover])

    def reset(self, key: jax.Array, params: Any) -> tuple[jax.Array, Any]:
        """A new game (pgx draws who moves first): ``(obs [2, *obs_shape], state)``."""
        state = self.pgx_env.init(key)
        return self.observe_all(state), state

    def step(
        self, key: jax.Array, state: Any, actions: jax.Array, params: Any
    ) -> tuple[jax.Array, Any, jax.Array, jax.Array, jax.Array, dict[str, jax.Array]]:
        """Applies ``actions[mover]`` (``actions [2]`` int32); resets the game when it ends.

        Returns ``obs [2, ...]``, the state, ``reward [2]`` float32 (pgx's rewards by player id),
        ``terminated [2]`` and ``truncated [2]`` (the same for both agents: the game ended by its
        rules, or was cut without ending) and ``info`` (see the class docstring).
        """
        step_key, reset_key = jax.random.split(key)
        action = jnp.asarray(actions, jnp.int32)[state.current_player]
        after = self.pgx_env.step(state, action, step_key)
        terminated = after.terminated
        truncated = after.truncated & ~terminated
        done = terminated | truncated
        final_obs = self.observe_all(after)
        fresh = self.pgx_env.init(reset_key)
        state = jax.tree.map(lambda new, old: jnp.where(done, new, old), fresh, after)
        info = {
            "final_observation": final_obs,
            "current_player": jnp.asarray(state.current_player, jnp.int32),
            "action_mask": self.action_mask(state),
            "episode_done": done,
            "global_state": self.global_state(state, params),
            "final_global_state": self.global_state(after, params),
            "final_action_mask": self.action_mask(after),
        }
        both = lambda x: jnp.broadcast_to(x, (self.num_agents,))
        reward = after.rewards.astype(jnp.float32)
        return self.observe_all(state), state, reward, both(terminated), both(truncated), info


def make_game(name: str) -> PgxGame:
    """The game ``name`` (one of :data:`GAMES`); an unknown name lists the known ones."""
    if name not in GAMES:
        hint = close_matches(name, GAMES)
        near = f" ({hint})" if hint.startswith("did you mean") else ""
        raise ValueError(f"unknown game {name!r}; known games: {', '.join(sorted(GAMES))}{near}")
    return PgxGame(name)
