"""Policy objectives of the on-policy learner, one per method, each a per-sample surrogate to
*maximize* (the learner minimizes minus its mean). Tested against plain references in
tests/test_objectives.py.

All take the probability ratio ``r = pi(a|s) / pi_old(a|s)`` of the sampled actions and their
advantages ``A`` (both ``[B]``). In the Mirror Learning view (Kuba et al.; Lu et al. 2022) an
objective is ``r A - drift(r, A)`` with a drift that is >= 0 and zero, with zero gradient, at
``r = 1``; PPO-clip and DPO are such drifts, and a user-supplied drift plugs in the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

Drift = Callable[[jax.Array, jax.Array], jax.Array]  # (ratio [B], advantages [B]) -> drift [B], >= 0

OBJECTIVES = ("ppo", "a2c", "mdpo", "dpo", "drift")


def ppo_clip(ratio: jax.Array, advantages: jax.Array, clip_eps: jax.Array | float) -> jax.Array:
    """PPO's clipped surrogate ``min(r A, clip(r, 1 - eps, 1 + eps) A)``: ``[B] -> [B]``."""
    return jnp.minimum(ratio * advantages, jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * advantages)


def policy_gradient(log_prob: jax.Array, advantages: jax.Array) -> jax.Array:
    """The vanilla policy-gradient (A2C, REINFORCE) surrogate ``log pi(a|s) A``: ``[B] -> [B]``.

    Its gradient is ``A grad log pi``, which is the gradient of ``r A`` (and of PPO's clipped
    surrogate) at ``r = 1``: so one PPO step on fresh data is an A2C step.
    """
    return log_prob * advantages


def dpo_drift(
    ratio: jax.Array, advantages: jax.Array, alpha: jax.Array | float = 2.0, beta: jax.Array | float = 0.6
) -> jax.Array:
    """Discovered Policy Optimisation's closed-form drift (Lu et al. 2022), ``[B] -> [B]``:

    ``relu((r - 1) A - alpha tanh((r - 1) A / alpha))`` where ``A >= 0``, and
    ``relu(log(r) A - beta tanh(log(r) A / beta))`` where ``A < 0``; the published defaults are
    ``alpha = 2``, ``beta = 0.6``.
    """
    positive = (ratio - 1.0) * advantages
    negative = jnp.log(ratio) * advantages
    drift_pos = jax.nn.relu(positive - alpha * jnp.tanh(positive / alpha))
    drift_neg = jax.nn.relu(negative - beta * jnp.tanh(negative / beta))
    return jnp.where(advantages >= 0, drift_pos, drift_neg)


def mirror(ratio: jax.Array, advantages: jax.Array, drift: Drift) -> jax.Array:
    """The Mirror Learning surrogate ``r A - drift(r, A)``: ``[B] -> [B]``."""
    return ratio * advantages - drift(ratio, advantages)


def mdpo_kl_coef(update: jax.Array, num_updates: int, step_size: jax.Array | float) -> jax.Array:
    """MDPO's proximity weight ``1 / t_k`` with the annealed step size ``t_k = t_0 (1 - k / K)``.

    ``update`` is ``k`` (updates done, from 0) and ``num_updates`` is ``K``, so ``t_k`` falls from
    ``t_0`` to ``t_0 / K`` and the weight grows from ``1 / t_0`` to ``K / t_0``: later policies
    move less (Tomar et al., on-policy MDPO).
    """
    remaining = 1.0 - jnp.asarray(update, jnp.float32) / num_updates
    return 1.0 / (step_size * remaining)


def surrogate(config: Any, log_prob: jax.Array, ratio: jax.Array, advantages: jax.Array) -> jax.Array:
    """``config.objective``'s per-sample surrogate to maximize (MDPO's KL term apart, which the
    learner adds): ``[B] -> [B]``; ``config`` carries the objective's coefficients."""
    objective = config.objective
    if objective == "drift":
        params = getattr(config, "drift_params", None)
        if params is None:
            return mirror(ratio, advantages, config.drift)
        return mirror(ratio, advantages, lambda r, a: config.drift(r, a, params))
    if objective == "ppo":
        return ppo_clip(ratio, advantages, config.clip_eps)
    if objective == "a2c":
        return policy_gradient(log_prob, advantages)
    if objective == "dpo":
        return mirror(ratio, advantages, lambda r, a: dpo_drift(r, a, config.dpo_alpha, config.dpo_beta))
    return ratio * advantages  # mdpo


def check_config(config: Any) -> None:
    """Validates ``objective`` and ``drift`` (a drift is probed on ``[3]`` inputs) and A2C's one
    gradient step per rollout, raising through ``config.fail``."""
    objective, drift = config.objective, config.drift
    if objective not in OBJECTIVES:
        config.fail("objective", f"must be one of {OBJECTIVES}, got {objective!r}")
    if getattr(config, "drift_params", None) is not None and objective != "drift":
        config.fail(
            "drift_params", f"parameters of a drift function are used only with objective='drift', got {objective!r}"
        )
    if (objective == "drift") != (drift is not None):
        config.fail(
            "drift",
            "objective='drift' takes its function from drift=..., and drift is used only then; got "
            f"objective={objective!r} with drift={'a function' if drift is not None else None}",
        )
    if drift is not None:
        if not callable(drift):
            config.fail("drift", f"must be a function (ratio [B], advantages [B]) -> [B], got {drift!r}")
        probe = jax.ShapeDtypeStruct((3,), jnp.float32)
        params = getattr(config, "drift_params", None)
        extra = () if params is None else (jax.ShapeDtypeStruct(jnp.shape(params), jnp.float32),)
        try:
            out = jax.eval_shape(drift, probe, probe, *extra)
        except Exception as err:  # the user's function, any failure: say which call failed
            config.fail(
                "drift",
                f"a drift function is called as drift(ratio [B], advantages [B]"
                f"{', drift_params [D]' if extra else ''}); "
                f"calling {getattr(drift, '__name__', drift)!r} that way failed: {err}",
            )
        if getattr(out, "shape", None) != (3,):
            config.fail(
                "drift",
                f"a drift function must return one value per sample ([B]); for B=3 it returned "
                f"{getattr(out, 'shape', out)}",
            )
    if objective == "a2c" and (config.update_epochs != 1 or config.num_minibatches != 1):
        config.fail(
            "objective",
            "'a2c' takes one gradient step per rollout (its gradient is only the policy gradient "
            f"at the policy that collected the data), so it needs update_epochs=1 and num_minibatches=1, got "
            f"{config.update_epochs} and {config.num_minibatches}; use a2c_config() or objective='ppo'",
        )
