"""Running mean and variance as pure state (parallel Welford / Chan et al. merge)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class RunningStats(NamedTuple):
    """Mean and variance of everything seen so far, elementwise over a feature shape."""

    mean: jax.Array  # feature shape
    var: jax.Array  # feature shape
    count: jax.Array  # type: ignore[assignment]  # scalar float32 (shadows tuple.count)


def init_stats(shape: tuple[int, ...]) -> RunningStats:
    """Empty statistics; ``count`` starts at a tiny value so the first merge is well defined."""
    return RunningStats(jnp.zeros(shape, jnp.float32), jnp.ones(shape, jnp.float32), jnp.float32(1e-4))


def update_stats(stats: RunningStats, batch: jax.Array) -> RunningStats:
    """Merges a batch of samples ``[B, *feature]`` into ``stats``."""
    batch = batch.astype(jnp.float32)
    return merge_moments(stats, batch.mean(axis=0), batch.var(axis=0), jnp.float32(batch.shape[0]))


def merge_moments(stats: RunningStats, b_mean: jax.Array, b_var: jax.Array, b_count: jax.Array) -> RunningStats:
    """Merges the mean and (population) variance of ``b_count`` samples, each ``[*feature]``, into ``stats``."""
    delta = b_mean - stats.mean
    total = stats.count + b_count
    mean = stats.mean + delta * b_count / total
    m2 = stats.var * stats.count + b_var * b_count + delta**2 * stats.count * b_count / total
    return RunningStats(mean, m2 / total, total)


def normalize(stats: RunningStats, x: jax.Array, eps: float = 1e-8) -> jax.Array:
    """``(x - mean) / sqrt(var + eps)``, broadcasting over leading axes."""
    return (x - stats.mean) / jnp.sqrt(stats.var + eps)
