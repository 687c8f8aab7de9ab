"""Critic-free advantages for the on-policy learner (``ppo.Config.advantage``): REINFORCE with a
running baseline, RLOO and group-relative (GRPO) advantages, from episodes that start at a reset
every update, and a KL penalty to a reference policy.

What these carry from one update to the next is :class:`CriticFree` (None with a critic); the
functions here are all that read or write it. The advantage math itself is in
:mod:`purejaxlib.returns`. ``config`` is any Config with PPO's ``advantage`` fields.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from purejaxlib import returns as returns_lib

ADVANTAGES = ("gae", "reinforce", "rloo", "group")


class CriticFree(NamedTuple):
    """State of the critic-free advantages between updates."""

    ref_params: Any  # params of the KL reference policy
    baseline: jax.Array | None  # advantage='reinforce': running mean of the return per time step [num_steps]


def check_config(config: Any) -> None:
    """Validates the advantage fields, raising through ``config.fail`` (field named, fix given)."""
    config.check_choice("advantage", ADVANTAGES)
    config.check_positive("group_size", "ref_update_interval", allow_zero=True)
    config.check_positive("ref_kl_coef", allow_zero=True)
    config.check_range("baseline_decay", 0.0, 1.0)
    advantage, group_size = config.advantage, config.group_size
    if advantage in ("rloo", "group"):
        if group_size < 2:
            config.fail(
                "group_size",
                f"advantage={advantage!r} compares each rollout with the others of its "
                f"group, so it needs group_size >= 2, got {group_size}",
            )
        if config.num_envs % group_size:
            config.fail(
                "group_size",
                f"num_envs={config.num_envs} must be a multiple of group_size={group_size} "
                "(each group is group_size consecutive envs)",
            )
    elif group_size != 1:
        config.fail(
            "group_size", f"is used by advantage='rloo' or 'group' only, got {group_size} with advantage={advantage!r}"
        )
    if advantage == "gae":
        ref_kl = config.concrete("ref_kl_coef")
        if ref_kl is not None and np.any(ref_kl != 0):
            config.fail(
                "ref_kl_coef",
                "the KL penalty to a reference policy goes with the critic-free advantages "
                "(advantage='reinforce', 'rloo' or 'group'); with 'gae' use objective='mdpo' for a KL term",
            )
        if config.ref_update_interval:
            config.fail("ref_update_interval", "is used by the critic-free advantages only")
        return
    for name in ("normalize_obs", "normalize_reward"):
        if getattr(config, name):
            config.fail(
                name,
                f"advantage={advantage!r} restarts every env at each update, which would restart "
                "the running statistics too; it is not supported with the critic-free advantages",
            )


def init(config: Any, params: Any) -> CriticFree | None:
    """The reference is the initial policy and the baseline zero; None with advantage='gae'."""
    if config.advantage == "gae":
        return None
    baseline = jnp.zeros((config.num_steps,), jnp.float32) if config.advantage == "reinforce" else None
    return CriticFree(params, baseline)


def advantages(
    config: Any, state: CriticFree, trajectory: Any, iteration: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array, CriticFree]:
    """Advantages ``[T, N]`` from each env's first episode of a rollout that starts at a reset, their
    mask ``[T, N]``, the returns ``[T, N]``, and ``state`` with REINFORCE's baseline updated
    (``iteration``: updates done before this one; the first replaces the zero baseline)."""
    returns, mask = returns_lib.episode_returns_to_go(trajectory.reward, trajectory.episode_done, config.gamma)
    baseline = state.baseline
    if config.advantage == "reinforce":
        assert baseline is not None  # init made one
        advantage = returns - baseline[:, None]  # the baseline predates these returns: no bias
        decay = jnp.where(iteration == 0, 0.0, config.baseline_decay)
        baseline = returns_lib.update_running_baseline(baseline, returns, mask, decay)
    elif config.advantage == "rloo":
        advantage = returns_lib.grouped_rloo_advantages(returns, config.group_size)
    else:
        advantage = returns_lib.grouped_group_advantages(returns, config.group_size, config.group_std)
    return advantage, mask, returns, state._replace(baseline=baseline)


def refresh_reference(config: Any, state: CriticFree, params: Any, iteration: jax.Array) -> CriticFree:
    """Copies ``params`` into the KL reference every ``ref_update_interval`` updates (``iteration``:
    updates done, this one included); never with 0."""
    if not config.ref_update_interval:
        return state
    refresh = iteration % config.ref_update_interval == 0
    return state._replace(
        ref_params=jax.tree.map(lambda new, old: jnp.where(refresh, new, old), params, state.ref_params)
    )
