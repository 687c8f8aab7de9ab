"""Evolution strategies: policy parameters searched by an evosax strategy, whole population in one program.

Each generation the strategy proposes ``population_size`` parameter vectors of one policy network
(``ask``); every member plays ``episodes_per_member`` complete episodes (population x episodes
vmapped, deterministic actions); the members' mean returns are their fitness, shaped (centered
ranks by default) and handed back (``tell``), which moves the search distribution. Observations
are normalized with running statistics shared by the whole population, frozen within a
generation and merged from every step it played (as in OpenAI-ES). The strategies are evosax's,
chosen by name; nothing of theirs is rewritten here.

Surface (shared by every algorithm in purejaxlib.algos)::

    config = es.Config(env="CartPole-v1", strategy="open_es", population_size=256)
    state = es.init(config, key)
    state, metrics = es.step(config, state)        # one generation: ask, play, tell
    result = es.train(config, key)                 # init + lax.scan(step); jittable end to end
    act = es.policy(config, result.state)          # the search distribution's mean as a policy

Budget: ``total_timesteps`` counts each member's episodes at their time limit
(``steps_per_update = population_size * episodes_per_member * episode_steps``), so
``num_updates`` (generations) is static; ``live_steps`` reports the env steps actually played
(episodes that end early play fewer).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ClassVar, Literal, NamedTuple, cast

import jax
import jax.numpy as jnp
import numpy as np
import optax

from purejaxlib import envs as envs_lib
from purejaxlib import onpolicy, training
from purejaxlib.config import EnvConfig, static, traced
from purejaxlib.distributions import to_bounds
from purejaxlib.networks import ACTIVATIONS, MLP
from purejaxlib.normalization import RunningStats, init_stats, merge_moments, normalize

try:  # an optional extra: pip install 'purejaxlib[es]'
    import evosax.algorithms as evosax_algorithms
    from evosax.core import fitness_shaping as evosax_shaping
except ImportError:  # pragma: no cover - exercised only without the extra
    evosax_algorithms = None
    evosax_shaping = None

INSTALL = "evolution strategies need evosax: pip install 'purejaxlib[es]'"

STRATEGIES: dict[str, str] = {
    "open_es": "Open_ES",
    "snes": "SNES",
    "xnes": "xNES",
    "cma_es": "CMA_ES",
    "sep_cma_es": "Sep_CMA_ES",
    "pgpe": "PGPE",
}
"""Strategy names (``Config.strategy``) and the evosax class of each."""

# Strategies whose mean moves by an optax optimizer (its learning rate is ``Config.lr``), and that
# optimizer with its default learning rate: Adam for the gradient estimators, plain steps of the
# natural gradient for the NES family. CMA-ES sets its own step sizes.
OPTIMIZED: dict[str, tuple[Callable[..., optax.GradientTransformation], float]] = {
    "open_es": (optax.adam, 0.03),
    "pgpe": (optax.adam, 0.03),
    "snes": (optax.sgd, 1.0),
    "xnes": (optax.sgd, 1.0),
}

SHAPINGS = ("default", "centered_rank", "z_score", "normalize", "raw")
"""Fitness shaping: ``default`` keeps the strategy's own (centered ranks for open_es and pgpe,
rank weights for the NES and CMA families, which need them)."""

OBS_CLIP = 5.0  # normalized observations are clipped to [-5, 5]


class Config(EnvConfig):
    """Evolution-strategy hyperparameters. Static fields set program structure; traced ones are
    float32 leaves (a sweep over ``lr`` or ``sigma`` is one program)."""

    features: ClassVar[dict[str, str]] = {
        "strategy": "the evosax strategy by name",
        "population_size": "members searched per generation",
        "episodes_per_member": "episodes averaged into each member's fitness",
        "sigma": "initial std of the search distribution",
        "fitness_shaping": "how returns become fitness",
    }

    total_timesteps: int = static(5_000_000)
    """Env steps of the whole run, each member's episodes counted at their time limit."""
    strategy: Literal["open_es", "snes", "xnes", "cma_es", "sep_cma_es", "pgpe"] = static("open_es")
    """The evosax strategy (:data:`STRATEGIES`)."""
    population_size: int = static(256)
    """Members per generation (even for open_es and pgpe, which sample antithetic pairs)."""
    episodes_per_member: int = static(1)
    """Episodes each member plays per generation; its fitness is their mean return."""
    episode_steps: int = static(0)
    """Steps after which an episode is cut (0: the env's ``max_steps_in_episode``)."""
    hidden: tuple[int, ...] = static((32, 32))
    """Hidden layer widths of the policy network."""
    activation: Literal["tanh", "relu", "elu", "gelu", "swish"] = static("tanh")
    """Hidden-layer activation."""
    fitness_shaping: Literal["default", "centered_rank", "z_score", "normalize", "raw"] = static("default")
    """How returns become fitness (:data:`SHAPINGS`)."""
    shared_episodes: bool = static(False)
    """Every member plays from the same keys in a generation (same start states and env noise: common
    random numbers), so ranks compare parameters rather than luck."""
    zero_init: bool = static(False)
    """Centre the first search distribution on all-zero network parameters (as evosax's gymnax
    configs do) instead of a freshly initialized network."""
    normalize_obs: bool = static(True)
    """Normalize observations with running statistics shared by the population."""
    log_interval: int = static(0)
    """Report progress every this many generations (0: never)."""

    lr: float | None = traced(None)
    """Learning rate of the mean (Adam for open_es and pgpe, natural-gradient step for snes and xnes;
    CMA-ES sets its own). None: 0.03 for Adam, 1.0 for the natural gradient."""
    sigma: float = traced(0.05)
    """Std of the search distribution: fixed for open_es, the initial value for the others."""

    @property
    def max_steps(self) -> int:
        """Steps of one episode at most: ``episode_steps`` or the env's time limit."""
        if self.episode_steps:
            return self.episode_steps
        _, params = envs_lib.make(self.env)
        return int(getattr(params, "max_steps_in_episode", 0))

    @property
    def steps_per_update(self) -> int:
        """Env steps of one generation with every episode at its time limit."""
        return self.population_size * self.episodes_per_member * self.max_steps

    @property
    def num_updates(self) -> int:
        """Generations."""
        return self.total_timesteps // self.steps_per_update

    def validate(self) -> None:
        if evosax_algorithms is None:
            self.fail("strategy", INSTALL)
        self.check_env()
        self.check_choice("strategy", STRATEGIES)
        self.check_choice("fitness_shaping", SHAPINGS)
        self.check_choice("activation", ACTIVATIONS)
        self.check_positive("total_timesteps", "population_size", "episodes_per_member")
        self.check_positive("episode_steps", "log_interval", allow_zero=True)
        if self.strategy in ("open_es", "pgpe") and self.population_size % 2:
            self.fail(
                "population_size",
                f"{self.strategy} samples antithetic pairs: needs an even size, got {self.population_size}",
            )
        if self.population_size < 2:
            self.fail("population_size", f"needs at least 2 members to rank, got {self.population_size}")
        if not self.hidden or any(int(w) <= 0 for w in self.hidden):
            self.fail("hidden", f"needs one or more positive widths, got {self.hidden!r}")
        if self.max_steps <= 0:
            self.fail("episode_steps", f"{self.env} has no max_steps_in_episode; set episode_steps > 0")
        if self.num_updates < 1:
            self.fail(
                "total_timesteps",
                f"{self.total_timesteps} is less than one generation (population_size * episodes_per_member "
                f"* episode steps = {self.steps_per_update})",
            )
        if self.lr is None:
            object.__setattr__(self, "lr", np.float32(OPTIMIZED.get(self.strategy, (None, 0.0))[1]))
        if self.strategy in OPTIMIZED:
            self.check_positive("lr")
        self.check_positive("sigma")


class State(NamedTuple):
    """Everything a run carries from one generation to the next."""

    es_state: Any  # the evosax strategy's state (its mean, std, optimizer state, best so far...)
    obs_stats: RunningStats  # shared observation statistics, each [obs_dim]
    key: jax.Array
    iteration: jax.Array  # int32 scalar, generations done so far
    live_steps: jax.Array  # float32 scalar, env steps played so far (episodes ending early count less)


TrainResult = onpolicy.TrainResult  # (state after the last generation, metrics each [num_updates])


def make_network(config: Config) -> MLP:
    """The policy network: logits for discrete actions, ``tanh``-squashed ``[-1, 1]`` actions otherwise."""
    spec = config.spec
    out = spec.num_actions if spec.discrete else int(np.prod(spec.action_shape))
    return MLP(tuple(config.hidden), out, config.activation, orthogonal_init=False, image=config.image)


def _obs_dim(config: Config) -> int:
    return int(np.prod(config.spec.obs_shape))


@functools.cache
def _strategy(name: str, population_size: int, shaping: str, template: Any) -> Any:
    """The evosax strategy object, built once per structure and eagerly (so no tracer is kept)."""
    kwargs: dict[str, Any] = {}
    if name in OPTIMIZED:
        optimizer, default_lr = OPTIMIZED[name]
        # Config.lr replaces this value in the optimizer state every generation (traced, sweepable).
        kwargs["optimizer"] = optax.inject_hyperparams(optimizer)(learning_rate=default_lr)
    if name == "open_es":
        kwargs["std_schedule"] = optax.constant_schedule(1.0)  # Config.sigma replaces it (with_hyperparams)
    if shaping != "default":
        kwargs["fitness_shaping_fn"] = {
            "centered_rank": evosax_shaping.centered_rank_fitness_shaping_fn,
            "z_score": evosax_shaping.standardize_fitness_shaping_fn,
            "normalize": evosax_shaping.normalize_fitness_shaping_fn,
            "raw": evosax_shaping.identity_fitness_shaping_fn,
        }[shaping]
    solution = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), template.tree)
    with jax.ensure_compile_time_eval():
        return getattr(evosax_algorithms, STRATEGIES[name])(population_size, solution, **kwargs)


class _Template(NamedTuple):
    """Hashable wrapper of the params' shapes (a pytree of ShapeDtypeStruct)."""

    tree: Any

    def __hash__(self) -> int:
        leaves, treedef = jax.tree.flatten(self.tree)
        return hash((treedef, tuple((leaf.shape, str(leaf.dtype)) for leaf in leaves)))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Template) and hash(self) == hash(other)


def strategy(config: Config) -> Any:
    """The evosax strategy of ``config`` (one object per structure: evosax jits its methods on it)."""
    obs = jax.ShapeDtypeStruct((1, _obs_dim(config)), jnp.float32)
    shapes = jax.eval_shape(make_network(config).init, jax.random.key(0), obs)
    return _strategy(config.strategy, config.population_size, config.fitness_shaping, _Template(shapes))


def strategy_params(config: Config) -> Any:
    """evosax's params of the strategy with ``config.sigma`` as the initial std where it has one."""
    params = strategy(config).default_params
    if hasattr(params, "std_init"):
        params = params.replace(std_init=jnp.asarray(config.sigma, jnp.float32))
    return params


def with_hyperparams(config: Config, es_state: Any) -> Any:
    """The traced ``lr`` and (open_es) ``sigma`` written into the strategy's state."""
    if config.strategy in OPTIMIZED:
        opt_state = es_state.opt_state
        hyper = {**opt_state.hyperparams, "learning_rate": jnp.asarray(config.lr, jnp.float32)}
        es_state = es_state.replace(opt_state=opt_state._replace(hyperparams=hyper))
    if config.strategy == "open_es":
        es_state = es_state.replace(std=jnp.asarray(config.sigma, jnp.float32))
    return es_state


def init(config: Config, key: jax.Array) -> State:
    """A search distribution centred on a freshly initialized network; empty observation statistics."""
    key, net_key, es_key = jax.random.split(key, 3)
    params = make_network(config).init(net_key, jnp.zeros((1, _obs_dim(config)), jnp.float32))
    if config.zero_init:
        params = jax.tree.map(jnp.zeros_like, params)
    es = strategy(config)
    es_state = with_hyperparams(config, es.init(es_key, params, strategy_params(config)))
    return State(es_state, init_stats((_obs_dim(config),)), key, jnp.int32(0), jnp.float32(0.0))


def act(config: Config, params: Any, stats: RunningStats, obs: jax.Array) -> jax.Array:
    """Deterministic env actions of one parameter set for flat observations ``[..., obs_dim]``."""
    if config.normalize_obs:
        obs = jnp.clip(normalize(stats, obs), -OBS_CLIP, OBS_CLIP)
    out = cast(jax.Array, make_network(config).apply(params, obs))
    spec = config.spec
    if spec.discrete:
        return jnp.argmax(out, axis=-1).astype(jnp.int32)
    action = jnp.tanh(out).reshape(out.shape[:-1] + tuple(spec.action_shape))
    return to_bounds(action, spec.action_low, spec.action_high)


class Episodes(NamedTuple):
    """What one member's episodes give: returns and lengths ``[E]`` and the moments of the
    observations they saw (``obs_mean``/``obs_var`` ``[obs_dim]`` over ``obs_count`` steps)."""

    returns: jax.Array
    lengths: jax.Array
    obs_mean: jax.Array
    obs_var: jax.Array
    obs_count: jax.Array


def play(config: Config, params: Any, stats: RunningStats, key: jax.Array) -> Episodes:
    """``episodes_per_member`` episodes of one parameter set, side by side, each to its end or to
    ``max_steps``; stops once all have ended."""
    env, env_params = envs_lib.from_config(config)
    env = envs_lib.VecEnv(envs_lib.FlattenObservation(env), config.episodes_per_member)
    reset_key, run_key = jax.random.split(key)
    obs, env_state = env.reset(reset_key, env_params)
    n = config.episodes_per_member
    zeros = jnp.zeros((n,), jnp.float32)
    dim = obs.shape[-1]

    def cond(carry):
        t, alive = carry[0], carry[3]
        return (t < config.max_steps) & alive.any()

    def body(carry):
        t, env_state, obs, alive, returns, lengths, s1, s2 = carry
        weight = alive.astype(jnp.float32)
        s1 = s1 + (weight[:, None] * obs).sum(0)
        s2 = s2 + (weight[:, None] * obs * obs).sum(0)
        action = act(config, params, stats, obs)
        obs, env_state, reward, terminated, truncated, _ = env.step(
            jax.random.fold_in(run_key, t), env_state, action, env_params
        )
        returns = returns + weight * reward
        lengths = lengths + weight
        alive = alive & ~(terminated | truncated)
        return t + 1, env_state, obs, alive, returns, lengths, s1, s2

    init_carry = (
        jnp.int32(0),
        env_state,
        obs,
        jnp.ones((n,), bool),
        zeros,
        zeros,
        jnp.zeros((dim,), jnp.float32),
        jnp.zeros((dim,), jnp.float32),
    )
    _, _, _, _, returns, lengths, s1, s2 = jax.lax.while_loop(cond, body, init_carry)
    count = lengths.sum()  # observations seen: one per step inside an episode
    mean = s1 / jnp.maximum(count, 1.0)
    var = jnp.maximum(s2 / jnp.maximum(count, 1.0) - mean * mean, 0.0)
    return Episodes(returns, lengths, mean, var, count)


def step(config: Config, state: State, index: jax.Array | None = None) -> tuple[State, dict[str, jax.Array]]:
    """One generation: ask the strategy for a population, play each member's episodes, tell it the
    mean returns (negated: evosax minimizes), merge the observation moments. ``index`` is unused."""
    es = strategy(config)
    es_params = strategy_params(config)
    key, ask_key, play_key, tell_key = jax.random.split(state.key, 4)
    es_state = with_hyperparams(config, state.es_state)
    population, es_state = es.ask(ask_key, es_state, es_params)
    if config.shared_episodes:
        member_keys = jnp.broadcast_to(play_key, (config.population_size,))
    else:
        member_keys = jax.random.split(play_key, config.population_size)
    episodes = jax.vmap(play, in_axes=(None, 0, None, 0))(config, population, state.obs_stats, member_keys)
    fitness = episodes.returns.mean(axis=-1)  # [population_size]
    es_state, _ = es.tell(tell_key, population, -fitness, es_state, es_params)
    obs_stats = state.obs_stats
    if config.normalize_obs:
        obs_stats = merge_population(obs_stats, episodes)
    live_steps = state.live_steps + episodes.lengths.sum()
    iteration = state.iteration + 1
    metrics = {
        "episode_return": fitness.mean(),
        "episode_length": episodes.lengths.mean(),
        "episodes": jnp.float32(config.population_size * config.episodes_per_member),
        "best_return": fitness.max(),
        "fitness_std": fitness.std(),
        "live_steps": live_steps,
        "env_steps": iteration * config.steps_per_update,
        "iteration": iteration,
    }
    std = getattr(es_state, "std", None)
    if std is not None:
        metrics["sigma"] = jnp.mean(std)
    return State(es_state, obs_stats, key, iteration, live_steps), metrics


def merge_population(stats: RunningStats, episodes: Episodes) -> RunningStats:
    """Merges every member's observation moments ``[P, obs_dim]`` into the shared statistics."""
    count = episodes.obs_count  # [P]
    total = jnp.maximum(count.sum(), 1.0)
    mean = (count[:, None] * episodes.obs_mean).sum(0) / total
    var = (count[:, None] * (episodes.obs_var + (episodes.obs_mean - mean) ** 2)).sum(0) / total
    return merge_moments(stats, mean, var, count.sum())


def train(config: Config, key: jax.Array) -> TrainResult:
    """``init`` then ``num_updates`` generations inside ``lax.scan``; jit- and vmap-able."""
    return TrainResult(*training.train(init, step, config, key))


def mean_params(config: Config, state: State) -> Any:
    """The search distribution's mean as network params (the policy :func:`policy` acts with)."""
    return strategy(config).get_mean(state.es_state)


def policy(config: Config, state: State, *, deterministic: bool = True) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """``act(obs, key) -> env action`` for raw env observations ``[..., *obs_shape]``, acting with
    the search distribution's mean. ES policies are deterministic: ``key`` and ``deterministic``
    are accepted for the common surface and change nothing."""
    params = mean_params(config, state)
    stats = state.obs_stats

    def act_fn(obs: jax.Array, key: jax.Array) -> jax.Array:
        return act(config, params, stats, config.spec.flatten(obs))

    return cast(Callable[[jax.Array, jax.Array], jax.Array], act_fn)
