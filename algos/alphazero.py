"""AlphaZero: self-play with Gumbel MuZero search on the true game, one jitted program.

Each update plays ``num_steps`` moves in each of ``num_envs`` games side by side. Every move is
chosen by :func:`mctx.gumbel_muzero_policy` searching ``num_simulations`` simulations through the
real pgx game (:mod:`purejaxlib.envs.pgx_games`): the search steps pgx states, the network gives
the prior and the value of each new node, and the value is always from the view of the player to
move there, so a child's value enters its parent negated (discount -1; 0 after the game ends, where
the move's reward is the mover's payoff). Each move leaves a sample (the mover's observation and
the search's improved policy, ``action_weights``); when a game ends its samples get their value
targets (the final payoff from each sample's mover's view) and enter a ring buffer of samples.
Then ``gradient_steps`` Adam steps on batches drawn uniformly from it minimize cross-entropy to
the search policy plus ``value_weight`` times the squared error of the value (``tanh`` head).
A game still running at the end of an update goes on in the next one, so no sample is lost.

Surface (shared by every algorithm in purejaxlib.algos)::

    config = alphazero.Config(game="pgx/tic_tac_toe", num_envs=64, num_simulations=32)
    state = alphazero.init(config, key)
    state, metrics = alphazero.step(config, state)     # one update: self-play moves, then learning
    result = alphazero.train(config, key)              # init + lax.scan(step); jittable end to end
    act = alphazero.policy(config, result.state)       # act(obs, key, action_mask): greedy network
    match = alphazero.play_match(config, result.state.params, alphazero.random_player(config), key, 200)

Players for :func:`play_match` act on batches of pgx states (``player(states, key) -> actions``):
:func:`random_player`, :func:`greedy_player` (the policy head's best legal move) and
:func:`search_player` (the search, without Gumbel noise by default). Illegal moves never get
chosen: their logits are set to the lowest float before any argmax, sample or search.

Needs the optional extra: ``pip install 'purejaxlib[games]'`` (pgx and mctx).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ClassVar, Literal, NamedTuple, cast

import jax
import jax.numpy as jnp
import numpy as np
import optax

from purejaxlib import onpolicy, training
from purejaxlib.config import ConfigBase, static, traced
from purejaxlib.envs import VecEnv
from purejaxlib.envs.pgx_games import GAMES, PgxGame, make_game
from purejaxlib.networks import ACTIVATIONS, MLP
from purejaxlib.optim import make_optimizer

try:  # an optional extra: pip install 'purejaxlib[games]'
    import mctx
except ImportError:  # pragma: no cover - exercised only without the extra
    mctx = None

INSTALL = "AlphaZero needs pgx and mctx: pip install 'purejaxlib[games]'"


class Config(ConfigBase):
    """AlphaZero hyperparameters. Static fields set program structure; traced ones are float32
    leaves (a sweep over ``lr`` or ``value_weight`` is one program)."""

    features: ClassVar[dict[str, str]] = {
        "game": "the two-player game played by self-play",
        "num_simulations": "search simulations per move",
        "max_num_considered_actions": "moves the Gumbel search considers at the root",
        "gumbel_scale": "scale of the Gumbel noise of the self-play search",
        "value_weight": "weight of the value loss",
        "eval_games": "greedy games against a uniform random player after each update",
        "random_move_prob": "chance of a uniformly random self-play move",
    }

    game: str = static("pgx/tic_tac_toe")
    """The game (:data:`purejaxlib.envs.pgx_games.GAMES`)."""
    total_timesteps: int = static(100_000)
    """Self-play moves of the whole run, all games together."""
    num_envs: int = static(64)
    """Games played side by side."""
    num_steps: int = static(16)
    """Moves per game slot per update (a game may span updates)."""
    num_simulations: int = static(32)
    """Search simulations per move."""
    max_num_considered_actions: int = static(16)
    """Moves sampled (Gumbel top-k) for sequential halving at the root."""
    buffer_size: int = static(20_000)
    """Samples the ring buffer holds (at least ``num_envs`` times the longest game)."""
    batch_size: int = static(256)
    """Samples per gradient step."""
    gradient_steps: int = static(8)
    """Gradient steps per update; none until the buffer holds ``batch_size`` samples."""
    hidden: tuple[int, ...] = static((128, 128))
    """Hidden layer widths of the policy-value network (an MLP on the flattened board)."""
    activation: Literal["tanh", "relu", "elu", "gelu", "swish"] = static("relu")
    """Hidden-layer activation."""
    eval_games: int = static(0)
    """Greedy games against a uniform random player after each update (0: none), half of them
    moving first; their win/draw/loss rates become metrics."""
    log_interval: int = static(0)
    """Report progress every this many updates (0: never)."""

    lr: float = traced(1e-3)
    """Adam learning rate."""
    max_grad_norm: float = traced(1.0)
    """Global gradient-norm clip."""
    value_weight: float = traced(1.0)
    """Weight of the value loss beside the policy cross-entropy."""
    gumbel_scale: float = traced(1.0)
    """Scale of the Gumbel noise in self-play (1: sample moves as Gumbel MuZero does; 0: no noise)."""
    random_move_prob: float = traced(0.0)
    """Probability that a self-play move is a uniformly random legal one instead of the search's
    (its sample still carries the search's policy): positions off the self-play line, such as a
    weak opponent reaches."""

    @property
    def steps_per_update(self) -> int:
        """Self-play moves per update: ``num_envs * num_steps``."""
        return self.num_envs * self.num_steps

    @property
    def num_updates(self) -> int:
        return self.total_timesteps // self.steps_per_update

    @property
    def env(self) -> str:
        """The game's name (what the run record and the experiment runner call ``env``)."""
        return self.game

    def validate(self) -> None:
        if mctx is None:
            raise ImportError(INSTALL)
        if self.game not in GAMES:
            self.fail("game", f"unknown game {self.game!r}; known games: {', '.join(sorted(GAMES))}")
        load_game(self.game)  # without pgx: ImportError naming the extra
        self.check_choice("activation", ACTIVATIONS)
        self.check_positive(
            "total_timesteps", "num_envs", "num_steps", "num_simulations", "max_num_considered_actions",
            "buffer_size", "batch_size", "gradient_steps",
        )  # fmt: skip
        self.check_positive("eval_games", "log_interval", allow_zero=True)
        if not self.hidden or any(int(w) <= 0 for w in self.hidden):
            self.fail("hidden", f"needs one or more positive widths, got {self.hidden!r}")
        longest = GAMES[self.game][1]
        if self.buffer_size < self.num_envs * longest:
            self.fail(
                "buffer_size",
                f"{self.buffer_size} cannot hold the samples of one move that ends every game "
                f"(num_envs * longest game = {self.num_envs} * {longest} = {self.num_envs * longest})",
            )
        if self.num_updates < 1:
            self.fail(
                "total_timesteps",
                f"{self.total_timesteps} is less than one update (num_envs * num_steps = {self.steps_per_update})",
            )
        self.check_positive("lr", "max_grad_norm")
        self.check_positive("value_weight", "gumbel_scale", allow_zero=True)
        self.check_range("random_move_prob", 0.0, 1.0)


@functools.cache
def load_game(name: str) -> PgxGame:
    """The game ``name``, built once."""
    return make_game(name)


class Samples(NamedTuple):
    """Training samples: the mover's observation ``[..., *obs_shape]``, the search policy
    ``[..., num_actions]`` and the value target ``[...]`` (final payoff, mover's view)."""

    obs: jax.Array
    policy: jax.Array
    value: jax.Array


class Replay(NamedTuple):
    """Ring buffer of samples, each leaf of ``data`` ``[buffer_size, ...]``."""

    data: Samples
    pos: jax.Array  # int32: next slot to write
    size: jax.Array  # int32: slots filled, at most buffer_size


class Pending(NamedTuple):
    """The moves of each game slot's current game, waiting for its outcome; ``[N, L, ...]`` with
    ``L`` the longest game."""

    obs: jax.Array  # [N, L, *obs_shape] the mover's observation
    policy: jax.Array  # [N, L, num_actions] the search's action weights
    mover: jax.Array  # [N, L] int32 pgx player id of the mover
    length: jax.Array  # [N] int32 moves so far


class State(NamedTuple):
    """Everything a run carries from one update to the next."""

    params: Any
    opt_state: Any
    games: Any  # pgx states [N], the games in progress
    pending: Pending
    replay: Replay
    key: jax.Array
    iteration: jax.Array  # int32 scalar, updates done so far
    games_played: jax.Array  # int32 scalar, self-play games finished so far


TrainResult = onpolicy.TrainResult  # (state after the last update, metrics each [num_updates])

Player = Callable[[Any, jax.Array], jax.Array]
"""``player(states, key) -> actions``: a legal move ``[G]`` int32 for each pgx state of a batch ``[G]``."""


class Match(NamedTuple):
    """Games between players a and b, counted from a's side (int32 scalars), and each game's
    payoff to a (``outcomes [G]`` float32; a moved first in the even-numbered games)."""

    wins: jax.Array
    draws: jax.Array
    losses: jax.Array
    outcomes: jax.Array


def make_network(config: Config) -> MLP:
    """The policy-value network: ``[..., obs_dim] -> [..., num_actions + 1]`` (logits, then value)."""
    return MLP(tuple(config.hidden), load_game(config.game).num_actions + 1, config.activation, orthogonal_init=False)


def forward(config: Config, params: Any, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Prior logits ``[..., num_actions]`` and value in ``[-1, 1]`` ``[...]`` (mover's view) for
    observations ``[..., *obs_shape]``."""
    shape = load_game(config.game).obs_shape
    flat = jnp.reshape(obs, obs.shape[: obs.ndim - len(shape)] + (-1,)).astype(jnp.float32)
    out = cast(jax.Array, make_network(config).apply(params, flat))
    return out[..., :-1], jnp.tanh(out[..., -1])


def mask_logits(logits: jax.Array, legal: jax.Array) -> jax.Array:
    """Logits ``[..., A]`` with illegal moves at the lowest float (never argmax, sampled or searched
    while a legal move exists), shifted so the largest is 0."""
    logits = logits - jnp.max(logits, axis=-1, keepdims=True)
    return jnp.where(legal, logits, jnp.finfo(logits.dtype).min)


def recurrent_fn(config: Config) -> Callable[..., tuple[Any, Any]]:
    """mctx's model: the true game. ``(params, key, action [B], states [B]) -> (output, states)``.

    The reward is the mover's payoff for the move; the new node's value is the network's from the
    next mover's view, so it is discounted by -1 into the mover's; a finished game has value 0 and
    discount 0 (stepping it again changes nothing and pays 0).
    """
    env = load_game(config.game).pgx_env

    def fn(params: Any, key: jax.Array, action: jax.Array, states: Any) -> tuple[Any, Any]:
        batch = action.shape[0]
        mover = states.current_player
        states = jax.vmap(env.step)(states, action, jax.random.split(key, batch))
        logits, value = forward(config, params, states.observation)
        ended = states.terminated | states.truncated
        output = mctx.RecurrentFnOutput(
            reward=states.rewards[jnp.arange(batch), mover],
            discount=jnp.where(ended, 0.0, -1.0),
            prior_logits=mask_logits(logits, states.legal_action_mask),
            value=jnp.where(ended, 0.0, value),
        )
        return output, states

    return fn


def search(config: Config, params: Any, states: Any, key: jax.Array, num_simulations: int, gumbel_scale: Any) -> Any:
    """Gumbel MuZero search from pgx states ``[B]``: mctx's ``PolicyOutput`` (``action [B]``,
    ``action_weights [B, num_actions]``, the tree)."""
    logits, value = forward(config, params, states.observation)
    root = mctx.RootFnOutput(prior_logits=mask_logits(logits, states.legal_action_mask), value=value, embedding=states)
    return mctx.gumbel_muzero_policy(
        params,
        key,
        root,
        recurrent_fn(config),
        num_simulations,
        invalid_actions=~states.legal_action_mask,
        max_num_considered_actions=config.max_num_considered_actions,
        gumbel_scale=gumbel_scale,
    )


def empty_replay(config: Config) -> Replay:
    """A ring of ``buffer_size`` zero samples, none filled."""
    game = load_game(config.game)
    size = config.buffer_size
    data = Samples(
        jnp.zeros((size, *game.obs_shape), jnp.float32),
        jnp.zeros((size, game.num_actions), jnp.float32),
        jnp.zeros((size,), jnp.float32),
    )
    return Replay(data, jnp.int32(0), jnp.int32(0))


def add_games(replay: Replay, games: Samples, length: jax.Array, ended: jax.Array) -> Replay:
    """Writes the first ``length[n]`` samples of each ended game ``n`` (``games`` leaves
    ``[N, L, ...]``, ``length``/``ended`` ``[N]``) after one another into the ring."""
    capacity = replay.data.value.shape[0]
    counts = jnp.where(ended, length, 0)
    start = jnp.cumsum(counts) - counts
    moves = jnp.arange(games.value.shape[1])
    slot = (replay.pos + start[:, None] + moves[None, :]) % capacity
    slot = jnp.where(moves[None, :] < counts[:, None], slot, capacity).reshape(-1)  # capacity: dropped
    write = lambda buffer, x: buffer.at[slot].set(x.reshape((-1, *x.shape[2:])), mode="drop")
    total = counts.sum()
    data = Samples(*(write(b, x) for b, x in zip(replay.data, games)))
    return Replay(data, (replay.pos + total) % capacity, jnp.minimum(replay.size + total, capacity))


class MoveStats(NamedTuple):
    """What one self-play move reports, summed over games (float32 scalars)."""

    ended: jax.Array  # games that ended
    length: jax.Array  # their moves
    first_wins: jax.Array  # of those, won by the player who moved first
    draws: jax.Array
    root_value: jax.Array  # the search's root value, mean over games


def self_play_move(
    config: Config, params: Any, carry: tuple[Any, Pending, Replay], key: jax.Array
) -> tuple[tuple[Any, Pending, Replay], MoveStats]:
    """One searched move in every game; ended games' samples go to the replay, and their slots
    start a new game (the adapter's auto-reset)."""
    states, pending, replay = carry
    game = load_game(config.game)
    search_key, explore_key, random_key, step_key = jax.random.split(key, 4)
    out = search(config, params, states, search_key, config.num_simulations, config.gumbel_scale)
    explore = jax.random.bernoulli(explore_key, config.random_move_prob, (config.num_envs,))
    action = jnp.where(explore, random_player(config)(states, random_key), out.action)
    rows = jnp.arange(config.num_envs)
    pending = Pending(
        pending.obs.at[rows, pending.length].set(states.observation.astype(jnp.float32)),
        pending.policy.at[rows, pending.length].set(out.action_weights),
        pending.mover.at[rows, pending.length].set(states.current_player),
        pending.length + 1,
    )
    actions = jnp.stack([action, action], axis=-1)  # [N, 2]: the adapter applies the mover's
    env = VecEnv(game, config.num_envs)
    _, states, reward, terminated, _, info = env.step(step_key, states, actions, game.default_params)
    ended = terminated[:, 0]  # a truncated game has no outcome to learn from
    value = jnp.take_along_axis(reward, pending.mover, axis=1)  # [N, L] final payoff, each mover's view
    replay = add_games(replay, Samples(pending.obs, pending.policy, value), pending.length, ended)
    first = value[:, 0]
    weight = ended.astype(jnp.float32)
    stats = MoveStats(
        weight.sum(),
        (weight * pending.length).sum(),
        (weight * (first > 0)).sum(),
        (weight * (first == 0)).sum(),
        out.search_tree.summary().value.mean(),
    )
    pending = pending._replace(length=jnp.where(info["episode_done"], 0, pending.length))
    return (states, pending, replay), stats


def loss_fn(config: Config, params: Any, batch: Samples) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Cross-entropy to the search policy plus ``value_weight`` times the value's squared error."""
    logits, value = forward(config, params, batch.obs)
    policy_loss = optax.softmax_cross_entropy(logits, batch.policy).mean()
    value_loss = jnp.mean((value - batch.value) ** 2)
    return policy_loss + config.value_weight * value_loss, {"policy_loss": policy_loss, "value_loss": value_loss}


def learn(
    config: Config, params: Any, opt_state: Any, replay: Replay, key: jax.Array
) -> tuple[Any, Any, dict[str, jax.Array]]:
    """``gradient_steps`` Adam steps on uniform batches of the replay; nothing changes (and the
    losses are NaN) while it holds fewer than ``batch_size`` samples."""
    tx = make_optimizer(config.lr, config.max_grad_norm)
    grad_fn = jax.value_and_grad(functools.partial(loss_fn, config), has_aux=True)

    def sgd_step(carry, key):
        params, opt_state = carry
        index = jax.random.randint(key, (config.batch_size,), 0, jnp.maximum(replay.size, 1))
        batch = jax.tree.map(lambda x: x[index], replay.data)
        (loss, aux), grads = grad_fn(params, batch)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), {"loss": loss, **aux}

    (new_params, new_opt), losses = jax.lax.scan(
        sgd_step, (params, opt_state), jax.random.split(key, config.gradient_steps)
    )
    ready = replay.size >= config.batch_size
    pick = lambda new, old: jax.tree.map(lambda n, o: jnp.where(ready, n, o), new, old)
    losses = {k: jnp.where(ready, v.mean(), jnp.nan) for k, v in losses.items()}
    return pick(new_params, params), pick(new_opt, opt_state), losses


def init(config: Config, key: jax.Array) -> State:
    """A fresh network and optimizer, ``num_envs`` new games, an empty replay."""
    game = load_game(config.game)
    key, net_key, env_key = jax.random.split(key, 3)
    params = make_network(config).init(net_key, jnp.zeros((1, int(np.prod(game.obs_shape))), jnp.float32))
    opt_state = make_optimizer(config.lr, config.max_grad_norm).init(params)
    _, games = VecEnv(game, config.num_envs).reset(env_key, game.default_params)
    n, longest = config.num_envs, game.max_game_length
    pending = Pending(
        jnp.zeros((n, longest, *game.obs_shape), jnp.float32),
        jnp.zeros((n, longest, game.num_actions), jnp.float32),
        jnp.zeros((n, longest), jnp.int32),
        jnp.zeros((n,), jnp.int32),
    )
    return State(params, opt_state, games, pending, empty_replay(config), key, jnp.int32(0), jnp.int32(0))


def step(config: Config, state: State, index: jax.Array | None = None) -> tuple[State, dict[str, jax.Array]]:
    """One update: ``num_steps`` self-play moves in every game, then ``gradient_steps`` gradient
    steps. ``index`` is unused."""
    key, play_key, learn_key, eval_key = jax.random.split(state.key, 4)
    move = functools.partial(self_play_move, config, state.params)
    (games, pending, replay), stats = jax.lax.scan(
        move, (state.games, state.pending, state.replay), jax.random.split(play_key, config.num_steps)
    )
    params, opt_state, losses = learn(config, state.params, state.opt_state, replay, learn_key)
    ended = stats.ended.sum()
    per_game = lambda x: x.sum() / jnp.maximum(ended, 1.0)
    iteration = state.iteration + 1
    games_played = state.games_played + ended.astype(jnp.int32)
    metrics = {
        **losses,
        "games": ended,
        "game_length": per_game(stats.length),
        "first_player_wins": per_game(stats.first_wins),
        "draws": per_game(stats.draws),
        "root_value": stats.root_value.mean(),
        "replay_size": replay.size,
        "games_played": games_played,
        "env_steps": iteration * config.steps_per_update,
        "iteration": iteration,
    }
    if config.eval_games:
        match = play_match(config, params, random_player(config), eval_key, config.eval_games)
        metrics |= {f"eval_{k}": getattr(match, k) / config.eval_games for k in ("wins", "draws", "losses")}
    new_state = State(params, opt_state, games, pending, replay, key, iteration, games_played)
    return new_state, metrics


def train(config: Config, key: jax.Array) -> TrainResult:
    """``init`` then ``num_updates`` updates inside ``lax.scan``; jit- and vmap-able."""
    return TrainResult(*training.train(init, step, config, key))


def random_player(config: Config) -> Player:
    """Uniformly random legal moves."""

    def play(states: Any, key: jax.Array) -> jax.Array:
        logits = jnp.where(states.legal_action_mask, 0.0, -jnp.inf)
        return jax.random.categorical(key, logits).astype(jnp.int32)

    return play


def greedy_player(config: Config, params: Any) -> Player:
    """The policy head's most likely legal move (no search)."""

    def play(states: Any, key: jax.Array) -> jax.Array:
        logits, _ = forward(config, params, states.observation)
        return jnp.argmax(mask_logits(logits, states.legal_action_mask), axis=-1).astype(jnp.int32)

    return play


def search_player(config: Config, params: Any, num_simulations: int | None = None, gumbel_scale: float = 0.0) -> Player:
    """The search's move (``num_simulations``: ``config.num_simulations``; no Gumbel noise by
    default, so it plays its best move)."""
    sims = num_simulations or config.num_simulations

    def play(states: Any, key: jax.Array) -> jax.Array:
        return search(config, params, states, key, sims, gumbel_scale).action.astype(jnp.int32)

    return play


def as_player(config: Config, player: Player | Any) -> Player:
    """A :data:`Player` as it is; network params as their :func:`greedy_player`."""
    return cast(Player, player) if callable(player) else greedy_player(config, player)


def play_match(config: Config, player_a: Player | Any, player_b: Player | Any, key: jax.Array, num_games: int) -> Match:
    """``num_games`` games of a against b (players or network params, played greedily), a moving
    first in the even-numbered games; counted from a's side."""
    env = load_game(config.game).pgx_env
    first, second = as_player(config, player_a), as_player(config, player_b)
    init_key, play_key = jax.random.split(key)
    states = jax.vmap(env.init)(jax.random.split(init_key, num_games))
    a_first = jnp.arange(num_games) % 2 == 0
    a_id = jnp.where(a_first, states.current_player, 1 - states.current_player)
    rows = jnp.arange(num_games)

    def move(carry, key):
        states, outcome = carry
        key_a, key_b, step_key = jax.random.split(key, 3)
        action = jnp.where(states.current_player == a_id, first(states, key_a), second(states, key_b))
        states = jax.vmap(env.step)(states, action, jax.random.split(step_key, num_games))
        return (states, outcome + states.rewards[rows, a_id]), None

    longest = load_game(config.game).max_game_length
    carry = (states, jnp.zeros((num_games,), jnp.float32))
    (_, outcome), _ = jax.lax.scan(move, carry, jax.random.split(play_key, longest))
    count = lambda x: jnp.sum(x).astype(jnp.int32)
    return Match(count(outcome > 0), count(outcome == 0), count(outcome < 0), outcome)


def network_policy(config: Config, params: Any, *, deterministic: bool = True) -> Callable[..., jax.Array]:
    """``act(obs, key, action_mask) -> move``: the policy head of ``params`` on the mover's
    observation ``[..., *obs_shape]`` over legal moves (``action_mask [..., num_actions]`` bool):
    its argmax, or a sample when not ``deterministic``."""

    def act(obs: jax.Array, key: jax.Array, action_mask: jax.Array) -> jax.Array:
        logits, _ = forward(config, params, obs)
        logits = mask_logits(logits, action_mask)
        if deterministic:
            return jnp.argmax(logits, axis=-1).astype(jnp.int32)
        return jax.random.categorical(key, logits).astype(jnp.int32)

    return act


def policy(config: Config, state: State, *, deterministic: bool = True) -> Callable[..., jax.Array]:
    """:func:`network_policy` of the trained network: ``act(obs, key, action_mask) -> move``. No
    search: :func:`search_player` searches, from pgx states."""
    return network_policy(config, state.params, deterministic=deterministic)
