"""Optimizer construction (Adam with global-norm clipping and optional linear LR annealing) and
the shuffled-minibatch SGD loop of the on-policy learners."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax


def make_optimizer(
    lr: jax.Array | float,
    max_grad_norm: jax.Array | float,
    *,
    eps: float = 1e-5,
    anneal_steps: int | None = None,
) -> optax.GradientTransformation:
    """``clip_by_global_norm(max_grad_norm)`` then Adam.

    With ``anneal_steps`` the learning rate falls linearly from ``lr`` to 0 over that many
    optimizer updates. ``lr`` and ``max_grad_norm`` may be traced values, so one compiled program
    serves a sweep over them.
    """
    learning_rate = optax.linear_schedule(lr, 0.0, anneal_steps) if anneal_steps else lr
    return optax.chain(
        optax.clip_by_global_norm(max_grad_norm),
        optax.adam(learning_rate, eps=eps),
    )


def permutation(key: jax.Array, n: int) -> jax.Array:
    """A random permutation of ``arange(n)``: ``[n]`` int32, from one single-operand sort.

    Each index sits in the low ``ceil(log2 n)`` bits of a uint32 whose high bits are random, and
    the words are sorted: a plain sort, much cheaper on CPU than ``jax.random.permutation``'s
    key-value sorts with a compiled comparator. The indices are XORed with a random mask first, so
    the rare ties between random parts are broken at random as well. Above 2048 elements, where
    such ties would be common, this is ``jax.random.permutation``.
    """
    if n > 2048:
        return jax.random.permutation(key, n)
    bits = (n - 1).bit_length()
    low = jnp.uint32((1 << bits) - 1)
    words = jax.random.bits(key, (n + 1,), jnp.uint32)
    mask = words[n] & low
    packed = (words[:n] & ~low) | (jnp.arange(n, dtype=jnp.uint32) ^ mask)
    return ((jnp.sort(packed) & low) ^ mask).astype(jnp.int32)


def minibatch_sgd(
    loss_fn: Callable[[Any, Any], tuple[jax.Array, dict[str, jax.Array]]],
    tx: optax.GradientTransformation,
    params: Any,
    opt_state: Any,
    batch: Any,
    key: jax.Array,
    epochs: int,
    num_minibatches: int,
) -> tuple[Any, Any, dict[str, jax.Array]]:
    """``epochs`` shuffled passes of ``num_minibatches`` gradient steps over a flat ``batch [B, ...]``.

    ``loss_fn(params, minibatch) -> (loss, aux)``; returns the new params and optimizer state and
    ``{"loss", **aux}`` averaged over all steps.
    """
    size = jax.tree.leaves(batch)[0].shape[0]
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def minibatch_step(carry, minibatch):
        params, opt_state = carry
        (loss, aux), grads = grad_fn(params, minibatch)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), {"loss": loss, **aux}

    def epoch(carry, epoch_key):
        perm = permutation(epoch_key, size)
        shuffled = jax.tree.map(lambda x: x[perm].reshape((num_minibatches, -1) + x.shape[1:]), batch)
        return jax.lax.scan(minibatch_step, carry, shuffled)

    (params, opt_state), stats = jax.lax.scan(epoch, (params, opt_state), jax.random.split(key, epochs))
    return params, opt_state, jax.tree.map(jnp.mean, stats)
