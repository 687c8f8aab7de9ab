"""The training loop shared by the replay-based learners (DQN, TD3/DDPG, SAC/TQC).

One *iteration* steps ``num_envs`` envs ``train_freq`` times together, writes the transitions
to the replay buffer, then runs ``gradient_steps`` updates on minibatches sampled from it, all
inside ``lax.scan``. The update-to-data ratio is ``gradient_steps / (num_envs * train_freq)``.
The first ``learning_starts`` env steps take uniformly random actions and do not learn; ``train``
branches on the (unbatched) iteration number, so no compute is spent on masked-out updates.

An algorithm module subclasses :class:`Config`, writes three pure functions (an
:class:`Algorithm`) and defines its public ``init``, ``step`` and ``train`` by calling
:func:`init`, :func:`step` and :func:`train` here with them. Stored continuous actions are
scaled to [-1, 1] and mapped to the env's bounds only when stepping the env.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar, Literal, NamedTuple, cast

import jax
import jax.numpy as jnp
import numpy as np
import optax

from purejaxlib import distributions, replay, returns, training
from purejaxlib import envs as envs_lib
from purejaxlib.config import EnvConfig, static, traced
from purejaxlib.networks import ACTIVATIONS
from purejaxlib.optim import make_optimizer
from purejaxlib.rollout import Memory, episode_metrics, recurrent_rollout, rollout


class Config(EnvConfig):
    """Fields every replay-based learner shares; algorithms subclass and add their own."""

    pooled_reset: ClassVar[bool] = True

    total_timesteps: int = static(50_000)
    """Env steps per agent over the whole run."""
    num_envs: int = static(1)
    """Parallel envs per agent."""
    train_freq: int = static(1)
    """Steps per env collected between rounds of updates."""
    gradient_steps: int = static(1)
    """Gradient updates after each round of collection."""
    batch_size: int = static(256)
    """Transitions per gradient update."""
    buffer_size: int = static(100_000)
    """Replay capacity in transitions (rounded down to a multiple of num_envs)."""
    learning_starts: int = static(1_000)
    """Env steps of uniformly random actions before learning begins."""
    n_step: int = static(1)
    """Steps summed into each TD target (1: one-step TD)."""
    hidden: tuple[int, ...] = static((256, 256))
    """Hidden layer widths of every network."""
    activation: Literal["relu", "tanh", "elu", "gelu", "swish"] = static("relu")
    """Hidden-layer activation."""
    log_interval: int = static(0)
    """Report progress every this many iterations (0: never)."""
    anneal_lr: bool = static(False)
    """Anneal every learning rate linearly to 0 over the run's gradient steps (after warm-up)."""
    dataset: str = static("")
    """Path of an offline dataset (:func:`purejaxlib.offline.save`). Set, the run learns from it
    alone: no env steps, ``offline_updates`` gradient steps on minibatches of it."""
    offline_updates: int = static(100_000)
    """Offline runs (``dataset`` set): gradient steps over the whole run, ``gradient_steps`` per iteration."""
    normalize_obs: bool = static(False)
    """Observations standardized by a dataset's per-feature mean and std (TD3+BC's recipe): that of
    ``dataset`` (offline), else ``seed_data``, else ``prior_data`` (online), in training and in
    :func:`observe`, which every ``policy`` applies (so evaluation and export see raw env observations)."""
    seed_data: str = static("")
    """Online runs: a dataset written into the replay buffer before the first env step
    (offline-to-online fine-tuning, :func:`finetune`); new steps then push its oldest rows out.
    With ``num_envs`` > 1 each env's column gets a contiguous share of it."""

    prior_data: str = static("")
    """Online runs: a dataset (:func:`purejaxlib.offline.save`) mixed into every minibatch, RLPD's
    symmetric sampling: ``prior_fraction`` of each batch is drawn from it, the rest from the replay
    buffer. Its observation and action spaces must be the env's."""
    prior_fraction: float = static(0.5)
    """With ``prior_data``: the share of each minibatch drawn from it (rounded to whole samples)."""

    guide_steps: int = static(0)
    """Jump-start (:func:`jump_start`): a guide policy plays the first this many steps of every
    episode, the learner the rest; the curriculum lowers it in ``guide_stages`` equal stages to 0.
    0: no guide."""
    guide_stages: int = static(5)
    """Jump-start: stages of the curriculum from ``guide_steps`` down to 0."""
    guide_episodes: int = static(5)
    """Jump-start: episodes a stage must finish before its returns are judged."""

    guide_return: float = traced(float("nan"))
    """Jump-start: the curriculum moves to the next stage once the mean return of the episodes
    finished in the stage (at least ``guide_episodes``) reaches this (e.g. the guide's own return)."""
    lr: float = traced(3e-4)
    """Adam learning rate."""
    gamma: float = traced(0.99)
    """Discount factor."""
    tau: float = traced(0.005)
    """Polyak coefficient of the target networks (1: hard copy)."""
    max_grad_norm: float = traced(10.0)
    """Global gradient-norm clip."""

    @property
    def offline(self) -> bool:
        """Learning from ``dataset`` alone (no env steps)."""
        return bool(self.dataset)

    @property
    def steps_per_iteration(self) -> int:
        """Env steps per iteration per agent (offline: the gradient steps, the run's only steps)."""
        return self.gradient_steps if self.offline else self.num_envs * self.train_freq

    @property
    def num_iterations(self) -> int:
        return (
            self.offline_updates // self.gradient_steps
            if self.offline
            else self.total_timesteps // self.steps_per_iteration
        )

    @property
    def num_updates(self) -> int:
        """Iterations, under the name every algorithm's Config shares (with steps_per_update)."""
        return self.num_iterations

    @property
    def steps_per_update(self) -> int:
        return self.steps_per_iteration

    @property
    def mc_returns(self) -> bool:
        """Batches carry the data's Monte Carlo returns (``batch.mc_return``; Cal-QL)."""
        return False

    @property
    def prior_batch(self) -> int:
        """Samples of each minibatch drawn from ``prior_data`` (0 without it)."""
        return round(self.batch_size * self.prior_fraction) if self.prior_data else 0

    @property
    def warmup_iterations(self) -> int:
        if self.offline:
            return 0
        return min(math.ceil(self.learning_starts / self.steps_per_iteration), self.num_iterations)

    @property
    def num_gradient_steps(self) -> int:
        """Gradient steps over the run: ``gradient_steps`` in every iteration after warm-up."""
        return (self.num_iterations - self.warmup_iterations) * self.gradient_steps

    @property
    def buffer_rows(self) -> int:
        return self.buffer_size // self.num_envs

    @property
    def action_dim(self) -> int:
        """Number of discrete actions, or the size of the continuous action vector."""
        spec = self.spec
        return spec.num_actions if spec.discrete else math.prod(spec.action_shape)

    # Set by subclasses: which action spaces the algorithm supports.
    supports_discrete = True
    supports_continuous = True
    requires_dataset = False  # an offline-only learner (BC)

    def validate(self) -> None:
        self.check_env()
        name = type(self).__module__.rsplit(".", 1)[-1].upper()
        if self.spec.discrete and not self.supports_discrete:
            self.fail(
                "env",
                f"{name} needs continuous actions, but {self.env} has discrete actions; "
                "use a continuous env such as Pendulum-v1",
            )
        if not self.spec.discrete and not self.supports_continuous:
            self.fail(
                "env",
                f"{name} needs discrete actions, but {self.env} has continuous actions; "
                "use a discrete env such as CartPole-v1",
            )
        self.check_positive(
            "total_timesteps", "num_envs", "train_freq", "gradient_steps", "batch_size", "buffer_size", "n_step"
        )
        self.check_positive("learning_starts", "log_interval", allow_zero=True)
        if self.offline:
            self._validate_offline()
        else:
            self._validate_online()
        if not self.hidden or any(int(w) <= 0 for w in self.hidden):
            self.fail("hidden", f"needs one or more positive widths, got {self.hidden!r}")
        self.check_choice("activation", ACTIVATIONS)
        self.check_positive("lr", "max_grad_norm")
        self.check_range("gamma", 0.0, 1.0)
        self.check_range("tau", 0.0, 1.0)

    def _validate_offline(self) -> None:
        self.check_positive("offline_updates")
        if self.offline_updates < self.gradient_steps:
            self.fail(
                "offline_updates",
                f"{self.offline_updates} is less than one iteration (gradient_steps={self.gradient_steps})",
            )
        data = self._dataset("dataset")
        if len(data) < self.n_step:
            self.fail("dataset", f"{len(data)} transitions are fewer than n_step={self.n_step}")
        for field in ("prior_data", "seed_data"):
            if getattr(self, field):
                self.fail(
                    field,
                    "brings a dataset into an online run; an offline run (dataset=) learns from its dataset "
                    f"alone, so leave {field} empty",
                )

    def _validate_online(self) -> None:
        if self.normalize_obs and not (self.seed_data or self.prior_data):
            self.fail(
                "normalize_obs",
                "standardizes by a dataset's statistics, so it needs one: dataset= (offline), or "
                "seed_data= or prior_data= (online)",
            )
        if self.seed_data:
            self._validate_seed()
        if self.guide_steps:
            self._validate_guide()
        if self.prior_data:
            self._validate_prior()
        if self.requires_dataset:
            self.fail(
                "dataset",
                f"{type(self).__module__.rsplit('.', 1)[-1].upper()} learns from a dataset only; "
                "set dataset= to a file made by purejaxlib.offline.save (README, 'Offline RL')",
            )
        if self.num_iterations < 1:
            self.fail(
                "total_timesteps",
                f"{self.total_timesteps} is less than one iteration "
                f"(num_envs * train_freq = {self.steps_per_iteration})",
            )
        if self.learning_starts >= self.total_timesteps or self.warmup_iterations >= self.num_iterations:
            self.fail(
                "learning_starts",
                f"{self.learning_starts} random steps (rounded up to {self.warmup_iterations} whole iterations of "
                f"num_envs * train_freq = {self.steps_per_iteration}) leave nothing to learn from in a run of "
                f"total_timesteps={self.total_timesteps}; make it smaller",
            )
        if self.buffer_size < self.batch_size:
            self.fail("buffer_size", f"{self.buffer_size} is smaller than one batch (batch_size={self.batch_size})")
        if self.buffer_rows < max(self.train_freq, self.n_step):
            self.fail(
                "buffer_size",
                f"{self.buffer_size} holds {self.buffer_rows} steps per env, "
                f"fewer than train_freq={self.train_freq} or n_step={self.n_step}",
            )
        if max(self.warmup_iterations, 1) * self.train_freq < self.n_step:
            self.fail(
                "learning_starts",
                f"the buffer must hold n_step={self.n_step} steps per env before learning; "
                f"raise learning_starts to at least {self.n_step * self.num_envs}",
            )

    def _dataset(self, field: str) -> Any:
        """The dataset named by ``field``, checked against the env; a failure names the field."""
        from purejaxlib import offline

        try:
            return offline.cached(getattr(self, field), self.env)
        except (OSError, offline.DatasetError) as err:
            self.fail(field, str(err))

    def _validate_guide(self) -> None:
        self.check_positive("guide_steps", "guide_stages", "guide_episodes")
        if self.guide_stages > self.guide_steps:
            self.fail(
                "guide_stages",
                f"{self.guide_stages} stages cannot split guide_steps={self.guide_steps}; make it at most that",
            )
        value = self.concrete("guide_return")
        if value is not None and np.any(np.isnan(value)):
            self.fail("guide_return", "jump-start needs the return that ends a stage (e.g. the guide's own); set it")

    def _validate_seed(self) -> None:
        data = self._dataset("seed_data")
        if len(data) < self.num_envs:
            self.fail("seed_data", f"{len(data)} transitions are fewer than num_envs={self.num_envs}")
        if len(data) // self.num_envs > self.buffer_rows:
            self.fail(
                "buffer_size",
                f"{self.buffer_size} cannot hold seed_data's {len(data)} transitions; make it at least "
                f"{len(data)} (plus room for the online steps)",
            )

    def _validate_prior(self) -> None:
        if not 0.0 < self.prior_fraction < 1.0:
            self.fail("prior_fraction", f"must lie strictly between 0 and 1, got {self.prior_fraction!r}")
        if not 0 < self.prior_batch < self.batch_size:
            self.fail(
                "prior_fraction",
                f"{self.prior_fraction} of batch_size={self.batch_size} rounds to {self.prior_batch} samples; "
                "both the dataset's share and the replay buffer's need at least one",
            )
        data = self._dataset("prior_data")
        if len(data) < self.n_step:
            self.fail("prior_data", f"{len(data)} transitions are fewer than n_step={self.n_step}")


GuidePolicy = Callable[[jax.Array, jax.Array], jax.Array]
"""``act(obs [N, *obs_shape], key) -> env action [N, ...]``: a jump-start guide, e.g. any
algorithm's ``policy(config, state, deterministic=True)`` or an exported policy."""


class Algorithm(NamedTuple):
    """The pure functions that make a learner; ``learner`` is the algorithm's own pytree.

    init_learner(config, key, obs [1, obs_dim]) -> learner (params, targets, optimizer states)
    explore(config, learner, obs [N, obs_dim], key, progress) -> stored action [N, ...]
        (int32 for discrete; in [-1, 1] for continuous). ``progress`` is the fraction of
        training done, for schedules.
    update(config, learner, batch: replay.Batch, key, step) -> (learner, metrics dict of scalars)
        ``step`` counts gradient steps from 1. Inside ``train`` it is derived from the scan
        index, which is the same for every vmapped seed, so a ``lax.cond`` on it (TD3's delayed
        actor update) stays a real branch instead of a select that computes both sides.
    """

    init_learner: Callable[..., Any]
    explore: Callable[..., jax.Array]
    update: Callable[..., tuple[Any, dict[str, jax.Array]]]
    guide: GuidePolicy | None = None
    """Jump-start's guide (:func:`jump_start` sets it); None otherwise."""


GUIDE_MISSING = "guide_steps > 0 needs a guide policy: train with offpolicy.jump_start (or <algo>.jump_start)"


class Guide(NamedTuple):
    """Jump-start's curriculum (``state.guide``; scalars per agent)."""

    steps: jax.Array
    """int32: the guide's share of each episode now (``guide_steps`` falling to 0)."""
    episodes: jax.Array
    """int32: episodes finished in this stage."""
    return_sum: jax.Array
    """float32: the sum of their returns."""


class State(NamedTuple):
    """Everything a replay-based run carries (shapes per agent; a sweep adds leading axes)."""

    learner: Any
    """The algorithm's learner pytree (its ``Learner``: params, targets, optimizer states)."""
    buffer: replay.Buffer | None
    """Replay buffer, leaves ``[buffer_rows, num_envs, ...]`` (offline: None; the dataset is the buffer)."""
    env_state: Any
    """The vectorized env's state, leaves ``[num_envs, ...]`` (offline: None)."""
    obs: jax.Array | None
    """Current observations ``[num_envs, obs_dim]`` float32 (offline: None)."""
    key: jax.Array
    """PRNG key (scalar) for the next iteration."""
    iteration: jax.Array
    """int32 scalar: iterations (calls of ``step``) done so far."""
    guide: Guide | None = None
    """Jump-start's curriculum (``guide_steps`` > 0), else None."""


class TrainResult(NamedTuple):
    """What ``train`` returns."""

    state: State
    """The state after the last iteration."""
    metrics: dict[str, jax.Array]
    """Each ``[num_iterations]``: episode statistics, learner losses (NaN during warm-up),
    ``env_steps`` and ``iteration`` after each iteration."""


def make_env(config: Config) -> tuple[Any, Any]:
    """The vectorized env (flattened observations, episode statistics; ``config.reset_pool`` fresh
    starts a step when set) and its params."""
    env, env_params = envs_lib.from_config(config)
    if config.reset_pool:
        env = envs_lib.PendingReset(env)
    env = envs_lib.EpisodeStatistics(envs_lib.FlattenObservation(env))
    return envs_lib.VecEnv(env, config.num_envs, reset_pool=config.reset_pool), env_params


def make_tx(config: Config, every: int = 1) -> optax.GradientTransformation:
    """A network's optimizer: ``clip_by_global_norm(max_grad_norm)`` then Adam at ``lr``.

    With ``config.anneal_lr`` the rate falls linearly to 0 over the network's own updates,
    ``num_gradient_steps // every``, where ``every`` is how many gradient steps the algorithm takes
    per update of this network (TD3's actor: ``policy_delay``).
    """
    anneal = max(1, config.num_gradient_steps // every) if config.anneal_lr else None
    return make_optimizer(config.lr, config.max_grad_norm, anneal_steps=anneal)


def apply_gradients(tx: optax.GradientTransformation, grads: Any, params: Any, opt_state: Any) -> tuple[Any, Any]:
    """One optimizer step: ``(new params, new opt_state)``."""
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state


def to_env_action(config: Config, action: jax.Array) -> jax.Array:
    """Stored action -> env action: discrete unchanged, continuous from [-1, 1] to the env's bounds."""
    spec = config.spec
    return action if spec.discrete else distributions.to_bounds(action, spec.action_low, spec.action_high)


def random_action(config: Config, key: jax.Array, count: int) -> jax.Array:
    """Uniformly random stored actions ``[count, ...]``."""
    if config.spec.discrete:
        return jax.random.randint(key, (count,), 0, config.action_dim, dtype=jnp.int32)
    return jax.random.uniform(key, (count,) + tuple(config.spec.action_shape), minval=-1.0, maxval=1.0)


OBS_STD_FLOOR = 1e-3
"""Added to each feature's std before standardizing (TD3+BC's epsilon): constant features stay finite."""


def normalization_data(config: Config) -> str:
    """The dataset whose statistics ``normalize_obs`` uses: ``dataset``, else ``seed_data``, else
    ``prior_data`` ("" when none is set)."""
    return config.dataset or config.seed_data or config.prior_data


def observation_scale(config: Config) -> tuple[np.ndarray, np.ndarray]:
    """The dataset's observation mean and ``std + OBS_STD_FLOOR``, each ``[obs_dim]`` (flattened)."""
    from purejaxlib import offline

    obs = np.asarray(offline.cached(normalization_data(config), config.env).obs, np.float64)
    obs = obs.reshape(len(obs), -1)
    return obs.mean(0).astype(np.float32), (obs.std(0) + OBS_STD_FLOOR).astype(np.float32)


def standardize(config: Config, flat_obs: jax.Array) -> jax.Array:
    """Flattened observations ``[..., obs_dim]`` as the networks see them: standardized by the
    dataset's statistics when ``normalize_obs`` (:func:`normalization_data`), else unchanged."""
    if not (config.normalize_obs and normalization_data(config)):
        return flat_obs
    mean, std = observation_scale(config)
    return (flat_obs - mean) / std


def observe(config: Config, obs: jax.Array) -> jax.Array:
    """Env observations ``[..., *obs_shape]`` as the networks see them: ``[..., obs_dim]``, flattened
    and (with ``normalize_obs``) standardized. Every algorithm's ``policy`` applies it."""
    return standardize(config, config.spec.flatten(obs))


def dataset_buffer(config: Config) -> replay.Buffer:
    """An offline run's dataset as its (full, read-only) replay buffer, observations as
    :func:`observe` gives them; loaded when traced, so the compiled program holds it as a constant."""
    from purejaxlib import offline

    buffer = offline.as_buffer(offline.cached(config.dataset, config.env), config.env)
    data = with_mc_returns(config, buffer.data)
    data = data._replace(obs=standardize(config, data.obs), next_obs=standardize(config, data.next_obs))
    return buffer._replace(data=data)


def with_mc_returns(config: Config, data: replay.Stored) -> replay.Stored:
    """A dataset's rows (leaves ``[N, 1, ...]``, file order) with ``mc_return`` when
    ``config.mc_returns``: each step's discounted return to its episode's end
    (:func:`purejaxlib.returns.returns_to_go` at ``config.gamma``; a truncated episode's tail is
    not bootstrapped, as in Cal-QL)."""
    if not config.mc_returns:
        return data
    return data._replace(mc_return=returns.returns_to_go(data.reward, data.terminated, data.truncated, config.gamma))


def prior_buffer(config: Config) -> replay.Buffer:
    """``prior_data`` as a read-only replay buffer (raw observations, no ``next_action``); loaded
    when traced, so the compiled program holds it as a constant."""
    from purejaxlib import offline

    buffer = offline.as_buffer(offline.cached(config.prior_data, config.env), config.env)
    return buffer._replace(data=buffer.data._replace(next_action=None))


def sample_batch(
    config: Config, buffer: replay.Buffer, key: jax.Array, prior: replay.Buffer | None = None
) -> replay.Batch:
    """One minibatch ``[batch_size, ...]``: from ``buffer``, or with ``prior_data`` its first
    ``config.prior_batch`` rows from the dataset (``prior``, :func:`prior_buffer`, built here when
    not given) and the rest from ``buffer`` (symmetric sampling). Online, observations come out as
    the networks see them (:func:`standardize`); an offline run's buffer (:func:`dataset_buffer`)
    holds them so already."""
    if config.offline or not config.prior_data:
        batch = replay.sample(buffer, key, config.batch_size, config.gamma, config.n_step)
    else:
        prior_key, online_key = jax.random.split(key)
        prior = prior_buffer(config) if prior is None else prior
        prior_batch = replay.sample(prior, prior_key, config.prior_batch, config.gamma, config.n_step)
        online = replay.sample(
            buffer, online_key, config.batch_size - config.prior_batch, config.gamma, config.n_step
        )._replace(next_action=None)
        batch = jax.tree.map(lambda a, b: jnp.concatenate([a, b.astype(a.dtype)]), prior_batch, online)
    if config.offline:
        return batch
    return batch._replace(obs=standardize(config, batch.obs), next_obs=standardize(config, batch.next_obs))


def seed_buffer(config: Config, buffer: replay.Buffer) -> replay.Buffer:
    """``buffer`` (empty, leaves ``[rows, num_envs, ...]``) with ``seed_data`` written in: env
    column ``e`` gets transitions ``e*M .. (e+1)*M - 1`` (``M = N // num_envs``, the remainder is
    left out), and each column's last one, unless terminated, is marked truncated, so an n-step
    return never runs from the data into the online steps that follow it."""
    from purejaxlib import offline

    data = offline.as_buffer(offline.cached(config.seed_data, config.env), config.env).data._replace(next_action=None)
    data = with_mc_returns(config, data)
    rows = len(data.reward) // config.num_envs
    columns = lambda x: jnp.swapaxes(
        x[: rows * config.num_envs, 0].reshape((config.num_envs, rows) + x.shape[2:]), 0, 1
    )
    data = jax.tree.map(columns, data)
    data = data._replace(truncated=data.truncated.at[-1].set(~data.terminated[-1]))
    return replay.add(buffer, data)


def init(config: Config, key: jax.Array, algo: Algorithm) -> State:
    """``algo``'s learner, an empty replay buffer and reset envs, at iteration 0. Offline
    (``config.dataset``): the learner alone; buffer, env state and observation are None."""
    if config.offline:
        learner_key, key = jax.random.split(key)
        obs = dataset_buffer(config).data.obs[:1, 0]
        return State(algo.init_learner(config, learner_key, obs), None, None, None, key, jnp.int32(0))
    env, env_params = make_env(config)
    key, learner_key, env_key = jax.random.split(key, 3)
    obs, env_state = env.reset(env_key, env_params)
    learner = algo.init_learner(config, learner_key, obs[:1])
    action = random_action(config, key, config.num_envs)
    flag = jnp.zeros((config.num_envs,), bool)
    zero = jnp.zeros((config.num_envs,), jnp.float32)
    example = replay.Stored(obs, action, zero, flag, flag, obs, None, zero if config.mc_returns else None)
    buffer = replay.init(example, config.buffer_rows)
    if config.seed_data:
        buffer = seed_buffer(config, buffer)
    guide = None
    if config.guide_steps:
        guide = Guide(jnp.int32(config.guide_steps), jnp.int32(0), jnp.float32(0.0))
    return State(learner, buffer, env_state, obs, key, jnp.int32(0), guide)


def handover(config: Config, learner: Any, key: jax.Array, algo: Algorithm) -> State:
    """An online run's starting state (:func:`init`: reset envs, the replay buffer, seeded from
    ``seed_data`` when set) holding ``learner`` unchanged: an offline run's learner continues online.
    Raises ValueError naming the first leaf whose structure or shape differs from ``config``'s."""
    state = init(config, key, algo)
    want, got = jax.tree_util.tree_flatten_with_path(state.learner), jax.tree_util.tree_flatten_with_path(learner)
    if cast(Any, want[1]) != got[1]:
        raise ValueError(
            f"the learner to hand over is built differently from {type(config).__qualname__}'s "
            f"(its tree: {got[1]}; this config's: {want[1]}); use the offline run's network fields"
        )
    for (path, a), (_, b) in zip(want[0], got[0]):
        if jnp.shape(a) != jnp.shape(b) or jnp.result_type(a) != jnp.result_type(b):
            raise ValueError(
                f"learner{jax.tree_util.keystr(path)} is {jnp.result_type(b)}{list(jnp.shape(b))}, but "
                f"{type(config).__qualname__} builds {jnp.result_type(a)}{list(jnp.shape(a))}; use the offline "
                "run's network fields (hidden, num_critics, ...)"
            )
    return state._replace(learner=learner)


def jump_start(config: Config, key: jax.Array, algo: Algorithm, guide: GuidePolicy) -> TrainResult:
    """Jump-start RL (Uchendu et al. 2023): :func:`train` with ``guide`` playing the first
    ``state.guide.steps`` steps of every episode (``guide_steps`` at first, lowered stage by stage as
    the learner's returns reach ``guide_return``); every step, the guide's too, goes to the replay
    buffer. Metrics add ``guide_steps``. Jit- and vmap-able."""
    if not config.guide_steps:
        config.fail("guide_steps", "jump-start needs the guide's share of each episode (> 0) and guide_return")
    return train(config, key, algo._replace(guide=guide))


class HybridEntryPoints(NamedTuple):
    """An algorithm module's ``finetune`` and ``jump_start`` (:func:`hybrid_entry_points`)."""

    finetune: Callable[[Any, State, jax.Array], TrainResult]
    jump_start: Callable[[Any, jax.Array, GuidePolicy], TrainResult]


def hybrid_entry_points(algo: Algorithm) -> HybridEntryPoints:
    """``finetune(config, offline_state, key)``: ``offline_state``'s learner (an offline run's,
    e.g. ``train(offline_config, key).state``) continues in ``config``'s online run (:func:`finetune`;
    set ``seed_data=`` to start the replay buffer with the dataset). ``jump_start(config, key,
    guide)``: :func:`jump_start` with ``guide`` (``act(obs, key) -> env action``, e.g. a trained
    policy). Both jit- and vmap-able (pass ``guide`` as a static argument to ``jax.jit``)."""

    def finetune_(config: Any, offline_state: State, key: jax.Array) -> TrainResult:
        return finetune(config, offline_state.learner, key, algo)

    def jump_start_(config: Any, key: jax.Array, guide: GuidePolicy) -> TrainResult:
        return jump_start(config, key, algo, guide)

    return HybridEntryPoints(finetune_, jump_start_)


def finetune(config: Config, learner: Any, key: jax.Array, algo: Algorithm) -> TrainResult:
    """Offline to online: :func:`handover` then ``num_iterations`` calls of :func:`step` in one
    ``lax.scan`` (as :func:`train`). Jit- and vmap-able."""
    state = handover(config, learner, key, algo)
    step_fn = lambda c, s, i: step(c, s, algo, i)
    return TrainResult(*training.scan_updates(step_fn, config, state, 0, config.num_iterations))


def learn_from(
    config: Config, algo: Algorithm, learner: Any, buffer: replay.Buffer, key: jax.Array, first: jax.Array
) -> tuple[Any, dict[str, jax.Array]]:
    """``gradient_steps`` updates on minibatches of ``buffer``, numbered from ``first``; metrics
    averaged over them (NaN-aware: a metric only some steps produce)."""

    prior = prior_buffer(config) if config.prior_data and not config.offline else None  # once, not per step

    def gradient_step(learner, inputs):
        step_key, offset = inputs
        sample_key, update_key = jax.random.split(step_key)
        batch = sample_batch(config, buffer, sample_key, prior)
        return algo.update(config, learner, batch, update_key, first + offset)

    steps = (jax.random.split(key, config.gradient_steps), jnp.arange(config.gradient_steps))
    learner, stats = jax.lax.scan(gradient_step, learner, steps)
    return learner, jax.tree.map(jnp.nanmean, stats)


def guided_actions(
    config: Config,
    guide: GuidePolicy,
    obs: jax.Array,
    action: jax.Array,
    steps_in: jax.Array,
    share: jax.Array,
    key: jax.Array,
) -> jax.Array:
    """Stored actions ``[N, ...]``: the guide's (from env units to stored form) where the episode
    has run fewer than ``share`` steps (``steps_in [N]``), ``action`` elsewhere."""
    spec = config.spec
    env_action = guide(obs.reshape(obs.shape[:1] + tuple(spec.obs_shape)), key)
    if spec.discrete:
        stored = env_action.astype(action.dtype)
    else:
        stored = jnp.clip(distributions.from_bounds(env_action, spec.action_low, spec.action_high), -1.0, 1.0)
    use = (steps_in < share).reshape((-1,) + (1,) * (action.ndim - 1))
    return jnp.where(use, stored, action)


def next_stage(config: Config, guide: Guide, traj: Any) -> Guide:
    """The curriculum after an iteration whose trajectory is ``traj``: the stage's finished
    episodes and returns accumulate, and once ``guide_episodes`` have finished with a mean return
    at or above ``guide_return`` the guide's share drops by one stage (the tally restarts)."""
    done = traj.episode_done
    episodes = guide.episodes + done.sum().astype(jnp.int32)
    total = guide.return_sum + jnp.where(done, traj.episode_return, 0.0).sum()
    passed = (episodes >= config.guide_episodes) & (total >= config.guide_return * episodes) & (guide.steps > 0)
    stage = -(-config.guide_steps // config.guide_stages)
    steps = jnp.where(passed, jnp.maximum(guide.steps - stage, 0), guide.steps)
    return Guide(steps, jnp.where(passed, 0, episodes), jnp.where(passed, 0.0, total))


def _offline_iteration(
    config: Config, algo: Algorithm, state: State, index: jax.Array
) -> tuple[State, dict[str, jax.Array]]:
    """``gradient_steps`` updates on the dataset; no env steps."""
    key, learn_key = jax.random.split(state.key)
    learner, stats = learn_from(
        config, algo, state.learner, dataset_buffer(config), learn_key, index * config.gradient_steps + 1
    )
    iteration = state.iteration + 1
    metrics = {
        **stats,
        "gradient_steps": iteration * config.gradient_steps,
        "env_steps": jnp.int32(0) * iteration,
        "iteration": iteration,
    }
    return state._replace(learner=learner, key=key, iteration=iteration), metrics


def _learn_metrics_shape(config: Config, algo: Algorithm, state: State) -> dict[str, Any]:
    batch = jax.eval_shape(lambda b, k: sample_batch(config, b, k), state.buffer, state.key)
    _, metrics = jax.eval_shape(
        lambda learner, b, k: algo.update(config, learner, b, k, state.iteration), state.learner, batch, state.key
    )
    return metrics


def _iteration(
    config: Config, algo: Algorithm, state: State, learn: bool, index: jax.Array
) -> tuple[State, dict[str, jax.Array]]:
    """Collect ``train_freq`` steps, store them, and (when ``learn``) run ``gradient_steps`` updates.

    ``index`` is the iteration's number (unbatched under vmap when it comes from a scan index).
    """
    env, env_params = make_env(config)
    key, collect_key, learn_key = jax.random.split(state.key, 3)
    fraction = state.iteration.astype(jnp.float32) / config.num_iterations
    assert state.buffer is not None and state.obs is not None, "an online run's state holds its buffer and obs"

    def policy_fn(obs, act_key):
        if learn:
            action = algo.explore(config, state.learner, standardize(config, obs), act_key, fraction)
        else:
            action = random_action(config, act_key, config.num_envs)
        return action, to_env_action(config, action), ()

    guide = state.guide
    if guide is None:
        env_state, obs, traj = rollout(
            env, env_params, policy_fn, state.env_state, state.obs, collect_key, config.train_freq
        )
    else:
        guide_fn, share = algo.guide, guide.steps
        if guide_fn is None:
            raise ValueError(GUIDE_MISSING)

        def guided_fn(obs, first, steps_in, act_key):  # carry: steps each env's episode has run
            act_key, guide_key = jax.random.split(act_key)
            steps_in = jnp.where(first, 0, steps_in)
            action, _, extras = policy_fn(obs, act_key)
            action = guided_actions(config, guide_fn, obs, action, steps_in, share, guide_key)
            return action, to_env_action(config, action), extras, steps_in + 1

        steps_in = state.env_state.episode_length
        memory = Memory(steps_in, steps_in == 0)
        env_state, obs, _, traj = recurrent_rollout(
            env, env_params, guided_fn, state.env_state, state.obs, memory, collect_key, config.train_freq
        )
        guide = next_stage(config, guide, traj)
    unknown = jnp.full_like(traj.reward, -jnp.inf) if config.mc_returns else None  # Cal-QL: no bound online
    rows = replay.Stored(
        traj.obs, traj.action, traj.reward, traj.terminated, traj.truncated, traj.final_obs, None, unknown
    )
    buffer = replay.add(state.buffer, rows)

    learner = state.learner
    if learn:
        first = (index - config.warmup_iterations) * config.gradient_steps + 1
        learner, stats = learn_from(config, algo, learner, buffer, learn_key, first)
    else:
        stats = jax.tree.map(lambda s: jnp.full(s.shape, jnp.nan, s.dtype), _learn_metrics_shape(config, algo, state))
    iteration = state.iteration + 1
    metrics = {
        **episode_metrics(traj),
        **stats,
        "env_steps": iteration * config.steps_per_iteration,
        "iteration": iteration,
    }
    if guide is not None:
        metrics["guide_steps"] = guide.steps
    return State(learner, buffer, env_state, obs, key, iteration, guide), metrics


def step(
    config: Config, state: State, algo: Algorithm, index: jax.Array | None = None
) -> tuple[State, dict[str, jax.Array]]:
    """One iteration: random actions and no updates during warm-up, learning afterwards.

    Metrics (scalars): episode statistics, ``algo``'s learner metrics (NaN during warm-up), and
    ``env_steps`` (per agent) and ``iteration`` after this step.

    Pass ``index`` (the iteration's number, unbatched under ``vmap``, as ``train`` does) so the
    phase is a real branch; without it the phase comes from ``state.iteration``, which under
    ``vmap`` is batched and makes the branch a select that runs both sides.
    """
    number = state.iteration if index is None else index
    if config.offline:
        return _offline_iteration(config, algo, state, number)
    return jax.lax.cond(
        number < config.warmup_iterations,
        lambda s: _iteration(config, algo, s, False, number),
        lambda s: _iteration(config, algo, s, True, number),
        state,
    )


def train(config: Config, key: jax.Array, algo: Algorithm) -> TrainResult:
    """``init`` then ``num_iterations`` calls of ``step`` inside ``lax.scan``; jit- and vmap-able."""
    if config.guide_steps and algo.guide is None:
        raise ValueError(GUIDE_MISSING)
    return TrainResult(*training.train(lambda c, k: init(c, k, algo), lambda c, s, i: step(c, s, algo, i), config, key))
