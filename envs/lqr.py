"""Linear-quadratic regulator: a scalable continuous-control family with a known optimum.

``make("LQR", n=8, m=2, seed=3, stable=False)`` (or ``"LQR:n=8,m=2,seed=3,stable=False"``)
builds a random discrete-time linear system (:func:`make_params`)

    x_{t+1} = clip(A x_t + B u_t, -state_bound, state_bound),   u_t = clip(action, -action_bound, action_bound)
    reward_t = -(x_t' Q x_t + u_t' R u_t),   x_0 ~ Uniform[-init_scale, init_scale]^n

observed as x_t (float32 ``[n]``), with a Box action ``[m]``. Episodes never terminate; they are
truncated at ``max_steps_in_episode``, so a learner optimizes the infinite-horizon discounted cost.
The criterion everywhere here is the expected discounted cost ``E sum_t gamma^t c_t`` (cost =
-reward) from the initial-state distribution: minimized by the Riccati policy (:func:`optimal`),
analytic for linear policies (:func:`policy_cost`, :func:`optimal_cost`), estimated for any policy
by running the env (:func:`rollout_cost`), and compared by :func:`gap`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces
from jax.typing import ArrayLike

from purejaxlib.envs import register

__all__ = [
    "LQR",
    "LQRParams",
    "LQRState",
    "make_params",
    "factory",
    "controllable",
    "optimal",
    "policy_cost",
    "optimal_cost",
    "riccati_fits",
    "linear_policy",
    "rollout_cost",
    "gap",
]

STABLE_RADIUS = 0.9
UNSTABLE_RADIUS = 1.1
REFERENCE_GAMMAS = (0.9, 0.95, 0.99, 1.0)
ACTION_MARGIN = 1.5
STATE_MARGIN = 3.0
BOUND_SAMPLES = 4096
DEFAULT_MAX_STEPS = 50  # the Riccati closed loops decay within ~10-30 steps; short episodes mean more resets


@struct.dataclass
class LQRState:
    x: jax.Array  # [n] float32
    time: jax.Array  # int32 scalar


@struct.dataclass
class LQRParams:
    # float32 numpy arrays from make_params, jax arrays inside a traced program
    A: ArrayLike  # [n, n]
    B: ArrayLike  # [n, m]
    Q: ArrayLike  # [n, n] state cost, symmetric positive definite
    R: ArrayLike  # [m, m] action cost, symmetric positive definite
    action_bound: ArrayLike  # [m]: the env clips each |u_i| to it
    state_bound: ArrayLike  # [n]: the env clips each |x_i| to it
    init_scale: ArrayLike = 1.0  # x0 ~ Uniform[-init_scale, init_scale]^n
    max_steps_in_episode: ArrayLike = DEFAULT_MAX_STEPS  # int32 scalar


class LQR(environment.Environment[LQRState, LQRParams]):
    """The LQR env for state dimension ``n`` and action dimension ``m`` (shapes are static;
    every number lives in :class:`LQRParams`)."""

    def __init__(self, n: int, m: int, seed: int = 0, stable: bool = True):
        super().__init__()
        _check_dims(n, m)
        self.n, self.m = int(n), int(m)
        self.seed, self.stable = int(seed), bool(stable)

    # Instances with the same shapes are interchangeable, so jit caches keyed on the env (gymnax
    # makes ``self`` static) are shared between them.
    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash((type(self).__name__,) + self._key())

    def _key(self) -> tuple[int, int, int, bool]:
        # seed and stable pick default_params, which step() uses when called without params.
        return self.n, self.m, self.seed, self.stable

    def _check_shapes(self, params: LQRParams) -> None:
        """Shapes are static even under jit, so a mismatch is caught at trace time."""
        n, m = self.n, self.m
        want = {"A": (n, n), "B": (n, m), "Q": (n, n), "R": (m, m), "action_bound": (m,), "state_bound": (n,)}
        for field, shape in want.items():
            got = tuple(np.shape(getattr(params, field)))
            if got != shape:
                raise ValueError(f"LQR(n={n}, m={m}): params.{field} has shape {got}, expected {shape}")

    @property
    def default_params(self) -> LQRParams:
        """The params of ``make_params(n, m, seed, stable)``, built once."""
        if getattr(self, "_default_params", None) is None:
            self._default_params = make_params(self.n, self.m, self.seed, self.stable)
        return self._default_params

    def reset_env(self, key: jax.Array, params: LQRParams) -> tuple[jax.Array, LQRState]:
        self._check_shapes(params)
        scale = jnp.asarray(params.init_scale, jnp.float32)
        x = jax.random.uniform(key, (self.n,), jnp.float32, -1.0, 1.0) * scale
        return x, LQRState(x, jnp.int32(0))

    def step_env(self, key: jax.Array, state: LQRState, action: jax.Array, params: LQRParams):
        del key
        self._check_shapes(params)
        x = state.x
        bound = jnp.asarray(params.action_bound, jnp.float32)
        u = jnp.clip(jnp.reshape(jnp.asarray(action, jnp.float32), (self.m,)), -bound, bound)
        A, B, Q, R = (jnp.asarray(v, jnp.float32) for v in (params.A, params.B, params.Q, params.R))
        cost = x @ Q @ x + u @ R @ u
        x_bound = jnp.asarray(params.state_bound, jnp.float32)
        x_next = jnp.clip(A @ x + B @ u, -x_bound, x_bound)
        obs, new_state = self._apply_transition_gradient_policy(x_next, LQRState(x_next, state.time + 1))
        return obs, new_state, (-cost).astype(jnp.float32), jnp.array(False), {}

    def is_terminated(self, state: LQRState, params: LQRParams) -> jax.Array:
        return jnp.array(False)

    @property
    def name(self) -> str:
        return "LQR"

    @property
    def num_actions(self) -> int:
        return self.m

    def action_space(self, params: LQRParams | None = None) -> spaces.Box:
        params = self.default_params if params is None else params
        bound = jnp.asarray(params.action_bound, jnp.float32)
        return spaces.Box(-bound, bound, (self.m,), jnp.float32)

    def observation_space(self, params: LQRParams | None = None) -> spaces.Box:
        params = self.default_params if params is None else params
        bound = jnp.asarray(params.state_bound, jnp.float32)
        return spaces.Box(-bound, bound, (self.n,), jnp.float32)


# ---------------------------------------------------------------------------------------------
# construction (numpy, float64)


def _check_dims(n: Any, m: Any) -> None:
    for label, value in (("n (state dimension)", n), ("m (action dimension)", m)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"LQR: {label} must be an integer >= 1, got {value!r}")


def controllable(A: Any, B: Any) -> bool:
    """Whether (A, B) is controllable: the controllability matrix [B, AB, ..., A^{n-1} B] has
    rank n. Each block is scaled to unit norm first, so the rank is not lost to the blocks'
    geometric growth or decay (the rank is unchanged by scaling blocks)."""
    A, B = np.asarray(A, np.float64), np.asarray(B, np.float64)
    n = A.shape[0]
    blocks, block = [], B
    for _ in range(n):
        norm = np.linalg.norm(block)
        if norm == 0.0:
            break
        blocks.append(block / norm)
        block = A @ block
    if not blocks:
        return False
    return int(np.linalg.matrix_rank(np.hstack(blocks))) == n


def _spectral_radius(M: np.ndarray) -> float:
    return float(np.max(np.abs(np.linalg.eigvals(M))))


def _peaks(A: np.ndarray, B: np.ndarray, K: np.ndarray, x0: np.ndarray, max_steps: int = 10_000):
    """Largest |x_i| ``[n]`` and |u_i| ``[m]`` over all t >= 0 of the closed loop
    x' = (A - BK) x, u = -K x, started from each row of ``x0 [N, n]``. Infinite when the closed
    loop is not stable."""
    closed = A - B @ K
    n, m = A.shape[0], K.shape[0]
    if _spectral_radius(closed) >= 1.0:
        return np.full(n, np.inf), np.full(m, np.inf)
    x, x_peak, u_peak = x0, np.zeros(n), np.zeros(m)
    for _ in range(max_steps):
        x_peak = np.maximum(x_peak, np.abs(x).max(axis=0))
        u_peak = np.maximum(u_peak, np.abs(x @ K.T).max(axis=0))
        if np.abs(x).max() < 1e-9 * max(np.abs(x0).max(), 1e-30):
            break
        x = x @ closed.T
    return x_peak, u_peak


def _bound_samples(n: int, init_scale: float, seed: int) -> np.ndarray:
    """``BOUND_SAMPLES`` initial states ``[N, n]`` from the initial-state distribution (a stream
    of its own, apart from the one that draws A and B)."""
    rng = np.random.default_rng([seed, 1])
    return rng.uniform(-init_scale, init_scale, size=(BOUND_SAMPLES, n))


def _riccati(A: np.ndarray, B: np.ndarray, Q: np.ndarray, R: np.ndarray, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    import scipy.linalg  # only here: importing purejaxlib.envs stays fast

    root = math.sqrt(gamma)
    P = scipy.linalg.solve_discrete_are(root * A, root * B, Q, R)
    P = 0.5 * (P + P.T)
    K = np.linalg.solve(R + gamma * B.T @ P @ B, gamma * B.T @ P @ A)
    return K, P


def make_params(
    n: int = 2, m: int = 1, seed: int = 0, stable: bool = True, max_steps_in_episode: int = DEFAULT_MAX_STEPS
) -> LQRParams:
    """Random dynamics for ``seed``: A is ``N(0, 1/n)`` rescaled to spectral radius 0.9 (``stable``)
    or 1.1, B is ``N(0, 1)``, and the pair is checked controllable; Q = I, R = I, init_scale = 1.
    Raises ValueError for n < 1, m < 1 or an uncontrollable draw.

    Bounds. An unstable system under a bad policy grows geometrically, so the state is clipped to
    ``state_bound``: observations and rewards stay finite, and a diverging policy pays the bounded
    but large cost of sitting at the bound instead of overflowing or ending the episode (which
    would let it escape its cost). Both bounds come from the Riccati policies for gamma in
    ``REFERENCE_GAMMAS``, run from ``BOUND_SAMPLES`` initial states until they decay:
    ``ACTION_MARGIN`` times their largest |u_i|, ``STATE_MARGIN`` times their largest |x_i| (at
    least init_scale). So the optimal policy is clipped only from vanishingly rare initial states,
    the dynamics along it are linear and its rollout cost is the analytic figure;
    :func:`riccati_fits` checks this for any params and gamma. (Sizing by the worst corner of the
    initial box would widen the action box, and make uniformly random actions, every off-policy
    learner's warm-up, far costlier: benchmarks/README.md.)
    """
    _check_dims(n, m)
    if not isinstance(stable, (bool, np.bool_)):
        raise ValueError(f"LQR: stable must be a bool, got {stable!r}")
    if int(max_steps_in_episode) < 1:
        raise ValueError(f"LQR: max_steps_in_episode must be >= 1, got {max_steps_in_episode!r}")
    rng = np.random.default_rng(int(seed))
    A = rng.normal(size=(n, n)) / math.sqrt(n)
    A *= (STABLE_RADIUS if stable else UNSTABLE_RADIUS) / _spectral_radius(A)
    B = rng.normal(size=(n, m))
    if not controllable(A, B):
        raise ValueError(f"LQR: seed {seed} drew an uncontrollable (A, B) for n={n}, m={m}; use another seed")
    Q, R, init_scale = np.eye(n), np.eye(m), 1.0
    x_peak, u_peak = np.full(n, init_scale), np.zeros(m)
    x0 = _bound_samples(n, init_scale, seed=int(seed))
    for gamma in REFERENCE_GAMMAS:
        K, _ = _riccati(A, B, Q, R, gamma)
        xp, up = _peaks(A, B, K, x0)
        if np.all(np.isfinite(xp)):  # a discounted optimum may not stabilize an unstable A
            x_peak, u_peak = np.maximum(x_peak, xp), np.maximum(u_peak, up)
    f32 = lambda v: np.asarray(v, np.float32)
    return LQRParams(
        A=f32(A),
        B=f32(B),
        Q=f32(Q),
        R=f32(R),
        init_scale=f32(init_scale),
        action_bound=f32(ACTION_MARGIN * u_peak),
        state_bound=f32(STATE_MARGIN * x_peak),
        max_steps_in_episode=np.asarray(int(max_steps_in_episode), np.int32),
    )


def factory(n: int = 2, m: int = 1, seed: int = 0, stable: bool = True) -> tuple[LQR, LQRParams]:
    """Registry factory for ``"LQR"``: the options are the static construction choices."""
    env = LQR(n, m, seed, stable)
    return env, env.default_params


register("LQR", factory)


# ---------------------------------------------------------------------------------------------
# the optimum and policy costs (numpy, float64; params must be concrete)


def _numpy_params(params: LQRParams) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    A, B, Q, R = (np.asarray(v, np.float64) for v in (params.A, params.B, params.Q, params.R))
    return A, B, Q, R, float(np.asarray(params.init_scale))


def _check_gamma(gamma: float) -> float:
    gamma = float(gamma)
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"gamma must lie in (0, 1], got {gamma}")
    return gamma


def optimal(params: LQRParams, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """The optimal policy u = -K x and cost-to-go x' P x for discount ``gamma``: ``(K [m, n],
    P [n, n])`` from the Riccati equation of (sqrt(gamma) A, sqrt(gamma) B)."""
    gamma = _check_gamma(gamma)
    A, B, Q, R, _ = _numpy_params(params)
    if not controllable(A, B):
        raise ValueError("LQR.optimal: (A, B) is not controllable")
    return _riccati(A, B, Q, R, gamma)


def policy_cost(params: LQRParams, K: Any, gamma: float, horizon: int | None = None) -> float:
    """Expected discounted cost ``E sum_{t<horizon} gamma^t (x'Qx + u'Ru)`` of the linear policy
    u = -K x (``K [m, n]``) from the initial-state distribution, ignoring the env's clipping:
    ``(s^2/3) tr S`` with ``S = sum_t gamma^t (A-BK)'^t (Q + K'RK) (A-BK)^t``. ``horizon=None``:
    infinite (``inf`` when the policy does not stabilize the discounted system)."""
    import scipy.linalg

    gamma = _check_gamma(gamma)
    A, B, Q, R, scale = _numpy_params(params)
    K = np.asarray(K, np.float64).reshape(B.shape[1], A.shape[0])
    closed, stage = A - B @ K, Q + K.T @ R @ K
    variance = scale**2 / 3.0  # of each coordinate of Uniform[-s, s]
    if horizon is None:
        if math.sqrt(gamma) * _spectral_radius(closed) >= 1.0:
            return math.inf
        S = scipy.linalg.solve_discrete_lyapunov(math.sqrt(gamma) * closed.T, stage)
    else:
        S, term = np.zeros_like(A), stage
        for _ in range(int(horizon)):
            S = S + term
            term = gamma * closed.T @ term @ closed
    return float(variance * np.trace(S))


def riccati_fits(params: LQRParams, gamma: float) -> bool:
    """Whether the Riccati policy for ``gamma`` stays inside the action and state bounds, for all
    time, from ``BOUND_SAMPLES`` initial states drawn from the initial-state distribution (other
    draws than construction used), so the env is linear along it and its cost is the analytic
    figure."""
    A, B, _, _, scale = _numpy_params(params)
    K, _ = optimal(params, gamma)
    x_peak, u_peak = _peaks(A, B, K, _bound_samples(A.shape[0], scale, seed=2**31 - 1))
    return bool(np.all(u_peak <= np.asarray(params.action_bound)) and np.all(x_peak <= np.asarray(params.state_bound)))


def optimal_cost(params: LQRParams, gamma: float, horizon: int | None = None) -> float:
    """Expected discounted cost of the Riccati policy from the initial-state distribution, over
    ``horizon`` steps (``None``: infinite, the optimum ``(s^2/3) tr P``). Raises ValueError when
    the env's bounds would clip that policy (then the figure would not be the env's)."""
    if not riccati_fits(params, gamma):
        raise ValueError(
            f"LQR: the Riccati policy for gamma={gamma} leaves the action or state bounds, so its cost in "
            "the env is not the linear-system figure; widen params.action_bound / state_bound"
        )
    K, P = optimal(params, gamma)
    if horizon is None:
        return float(np.asarray(params.init_scale, np.float64) ** 2 / 3.0 * np.trace(P))
    return policy_cost(params, K, gamma, horizon)


def gap(cost: float, optimum: float) -> float:
    """Relative excess cost ``(cost - optimum) / optimum`` (0: optimal)."""
    return (float(cost) - float(optimum)) / float(optimum)


# ---------------------------------------------------------------------------------------------
# rollouts (jax)

Policy = Callable[[jax.Array, jax.Array], jax.Array]


def linear_policy(K: Any) -> Policy:
    """``act(obs [..., n], key) -> -K obs [..., m]`` for ``K [m, n]``."""
    K = jnp.asarray(K, jnp.float32)
    return lambda obs, key: -(obs @ K.T)


def rollout_cost(
    params: LQRParams, act: Policy, key: jax.Array, gamma: float, episodes: int = 1024, horizon: int | None = None
) -> np.ndarray:
    """Discounted cost ``sum_{t<horizon} gamma^t c_t`` of ``episodes`` independent episodes of
    the env under ``act(obs [episodes, n], key) -> action [episodes, m]`` (any policy, e.g.
    ``sac.policy(config, state, deterministic=True)``); ``[episodes]`` float64.

    ``horizon`` defaults to ``params.max_steps_in_episode``; the env's time limit is set to it,
    so each episode is one run from a reset. Compare with :func:`optimal_cost` over the same
    horizon (or ``None`` when ``gamma^horizon`` and the closed loop's decay make the tail
    negligible).
    """
    gamma = _check_gamma(gamma)
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    n, m = np.shape(params.A)[0], np.shape(params.B)[1]
    env = LQR(n, m)
    horizon = int(np.asarray(params.max_steps_in_episode)) if horizon is None else int(horizon)
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    params = dataclasses.replace(params, max_steps_in_episode=np.asarray(horizon, np.int32))

    @jax.jit
    def run(key: jax.Array, params: LQRParams) -> jax.Array:
        reset_key, run_key = jax.random.split(key)
        obs, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(reset_key, episodes), params)

        def one_step(carry, inputs):
            state, obs, total = carry
            step_key, discount = inputs
            act_key, env_key = jax.random.split(step_key)
            action = act(obs, act_key)
            obs, state, reward, _, _, _ = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
                jax.random.split(env_key, episodes), state, action, params
            )
            return (state, obs, total - discount * reward), None

        discounts = jnp.asarray(gamma, jnp.float32) ** jnp.arange(horizon, dtype=jnp.float32)
        carry = (state, obs, jnp.zeros((episodes,), jnp.float32))
        (_, _, total), _ = jax.lax.scan(one_step, carry, (jax.random.split(run_key, horizon), discounts))
        return total

    return np.asarray(run(key, params), np.float64)
