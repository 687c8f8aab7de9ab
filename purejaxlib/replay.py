"""A fixed-capacity replay buffer that lives in the training state (a pytree of arrays).

Transitions are stored per env in time order: every leaf has shape ``[rows, num_envs, ...]`` and
each insert writes whole rows (one row = one step of every env), circularly. Keeping each env's
steps in order is what makes n-step returns a gather of ``n`` consecutive rows. Everything is a
pure function of arrays, so a buffer per seed is just a ``vmap``.

Termination and truncation are stored apart: a terminated transition has no future value, a
truncated one (time limit) is bootstrapped from its true successor ``next_obs``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp


class Stored(NamedTuple):
    """What one env step leaves in the buffer; leaves ``[rows, num_envs, ...]`` once stored."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    terminated: jax.Array  # bool
    truncated: jax.Array  # bool
    next_obs: jax.Array  # true successor of obs (before any auto-reset)
    next_action: jax.Array | None = None  # offline datasets: the action logged at next_obs (NaN / -1: none)
    mc_return: jax.Array | None = (
        None  # Cal-QL: the data's discounted return from obs to its episode's end (-inf: none)
    )


class Buffer(NamedTuple):
    data: Stored  # leaves [rows, num_envs, ...]
    pos: jax.Array  # int32: next row to write
    size: jax.Array  # int32: rows written so far, at most ``rows``


class Batch(NamedTuple):
    """A learner minibatch ``[B, ...]`` with the n-step return folded in.

    The TD target of every algorithm is ``reward + discount * V(next_obs)``: ``discount`` is
    ``gamma**k`` for a k-step return that reached ``next_obs`` alive, and 0 after a termination.
    """

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    discount: jax.Array
    next_obs: jax.Array
    next_action: jax.Array | None = None
    """The data's action at ``next_obs`` (offline datasets only: ReBRAC's critic penalty); NaN
    (continuous) or -1 (discrete) where the data has none (the episode ended there)."""
    mc_return: jax.Array | None = None
    """The discounted Monte Carlo return from ``obs`` to the end of its episode in the data (Cal-QL);
    -inf where unknown (online steps)."""


def capacity(buffer: Buffer) -> int:
    """Rows the buffer holds (static)."""
    return jax.tree.leaves(buffer.data)[0].shape[0]


def init(example: Stored, rows: int) -> Buffer:
    """An empty buffer of ``rows`` rows shaped like ``example`` (leaves ``[num_envs, ...]``)."""
    data = jax.tree.map(lambda x: jnp.zeros((rows,) + x.shape, x.dtype), example)
    return Buffer(data, jnp.int32(0), jnp.int32(0))


def add(buffer: Buffer, rows: Stored) -> Buffer:
    """Writes ``T`` new rows (leaves ``[T, num_envs, ...]``, T static) after the newest, wrapping."""
    cap = capacity(buffer)
    count = jax.tree.leaves(rows)[0].shape[0]
    for name, stored, new in zip(Stored._fields, buffer.data, rows):
        if stored is None or new is None:
            if (stored is None) != (new is None):
                raise ValueError(f"replay.add: rows.{name} is {'missing' if new is None else 'extra'} for this buffer")
            continue
        chex.assert_shape(
            new,
            (count,) + stored.shape[1:],
            custom_message=f"replay.add: rows.{name} must be [T, *{stored.shape[1:]}] like the buffer's",
        )
    if count > cap:
        raise ValueError(f"cannot add {count} rows to a buffer of {cap} rows")
    if cap % count == 0:
        # Writes never straddle the end, so a contiguous in-place update suffices.
        data = jax.tree.map(
            lambda d, r: (
                jax.lax.dynamic_update_index_in_dim(d, r, buffer.pos, 0)
                if count == 1
                else jax.lax.dynamic_update_slice_in_dim(d, r, buffer.pos, 0)
            ),
            buffer.data,
            jax.tree.map(lambda r: r[0] if count == 1 else r, rows),
        )
    else:
        index = (buffer.pos + jnp.arange(count)) % cap
        data = jax.tree.map(lambda d, r: d.at[index].set(r), buffer.data, rows)
    return Buffer(data, (buffer.pos + count) % cap, jnp.minimum(buffer.size + count, cap))


def sample(buffer: Buffer, key: jax.Array, batch_size: int, gamma: jax.Array | float, n_step: int = 1) -> Batch:
    """``batch_size`` transitions drawn uniformly (with replacement) from the filled part.

    With ``n_step > 1`` each sample starts a run of up to ``n_step`` consecutive steps of one env:
    rewards are summed with discounting until the first step that ends an episode (terminated
    or truncated), and the bootstrap observation is that step's true successor. Start rows are
    drawn so that all ``n_step`` rows lie in the written, time-ordered part of the buffer, so
    a sample never reads an unfilled slot. Needs ``buffer.size >= n_step``.
    """
    chex.assert_rank(
        buffer.data.reward,
        2,
        custom_message="replay.sample: buffer leaves must be [rows, num_envs, ...] (vmap over a batch of buffers)",
    )
    chex.assert_rank(gamma, 0, custom_message="replay.sample: gamma must be a scalar")
    cap = capacity(buffer)
    num_envs = buffer.data.reward.shape[1]
    row_key, env_key = jax.random.split(key)
    starts = jnp.maximum(buffer.size - n_step + 1, 1)
    oldest = (buffer.pos - buffer.size) % cap
    offset = jax.random.randint(row_key, (batch_size,), 0, starts)
    env = jax.random.randint(env_key, (batch_size,), 0, num_envs)
    if n_step == 1:  # the common case, without the run bookkeeping below
        step = jax.tree.map(lambda x: x[(oldest + offset) % cap, env], buffer.data)
        discount = gamma * (1.0 - step.terminated.astype(jnp.float32))
        return Batch(step.obs, step.action, step.reward, discount, step.next_obs, step.next_action, step.mc_return)
    rows = (oldest + offset[:, None] + jnp.arange(n_step)) % cap  # [B, n]
    steps = jax.tree.map(lambda x: x[rows, env[:, None]], buffer.data)  # leaves [B, n, ...]

    ended = (steps.terminated | steps.truncated).astype(jnp.float32)
    # alive[k]: no earlier step of the run ended an episode, so step k belongs to the return.
    alive = jnp.cumprod(jnp.concatenate([jnp.ones_like(ended[:, :1]), 1.0 - ended[:, :-1]], axis=1), axis=1)
    powers = gamma ** jnp.arange(n_step, dtype=jnp.float32)
    reward = (steps.reward * alive * powers).sum(axis=1)
    # The last step of the run: the first one that ended an episode, else step n-1.
    last = jnp.sum(alive, axis=1).astype(jnp.int32) - 1
    pick = lambda x: jnp.take_along_axis(x, last.reshape((-1, 1) + (1,) * (x.ndim - 2)), axis=1)[:, 0]
    terminated = pick(steps.terminated).astype(jnp.float32)
    discount = gamma ** (last + 1).astype(jnp.float32) * (1.0 - terminated)
    next_action = None if steps.next_action is None else pick(steps.next_action)
    mc_return = None if steps.mc_return is None else steps.mc_return[:, 0]
    return Batch(steps.obs[:, 0], steps.action[:, 0], reward, discount, pick(steps.next_obs), next_action, mc_return)


def polyak(target: Any, online: Any, tau: jax.Array | float) -> Any:
    """Soft target update ``target <- tau * online + (1 - tau) * target`` on matching pytrees."""
    return jax.tree.map(lambda t, o: t + tau * (o - t), target, online)
