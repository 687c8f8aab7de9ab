"""Loss pieces shared by the value-based and actor-critic learners; each is tested against a
plain reference in tests/test_losses.py. Shapes are checked with chex at trace time (no cost in
the compiled program)."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import optax


def td_loss(errors: jax.Array, kind: str) -> jax.Array:
    """Mean Huber (delta 1) or half-squared loss of TD errors (any shape)."""
    if kind == "huber":
        return optax.huber_loss(errors).mean()
    if kind == "mse":
        return 0.5 * jnp.square(errors).mean()
    raise ValueError(f"unknown TD loss {kind!r}; valid: 'huber', 'mse'")


def tanh_gaussian(key: jax.Array, mean: jax.Array, log_std: jax.Array) -> tuple[jax.Array, jax.Array]:
    """A tanh-squashed Gaussian sample in [-1, 1] and its log-density: ``[..., A] -> ([..., A], [...])``.

    The change of variables uses ``log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u))``, which
    stays finite where tanh saturates.
    """
    chex.assert_equal_shape([mean, log_std], custom_message="tanh_gaussian: mean and log_std must both be [..., A]")
    std = jnp.exp(log_std)
    u = mean + std * jax.random.normal(key, mean.shape)
    gaussian = -0.5 * jnp.square((u - mean) / std) - log_std - 0.5 * jnp.log(2.0 * jnp.pi)
    log_det = 2.0 * (jnp.log(2.0) - u - jax.nn.softplus(-2.0 * u))
    return jnp.tanh(u), (gaussian - log_det).sum(axis=-1)


def quantile_huber_loss(pred: jax.Array, target: jax.Array, kappa: float = 1.0) -> jax.Array:
    """Quantile regression Huber loss of predicted quantiles against target samples.

    ``pred [..., M]`` are the quantiles at midpoints ``tau_i = (2i + 1) / 2M``; ``target [..., K]``
    are samples of the target distribution (no gradient taken through them). Averages over
    everything: ``mean_{..., i, j} |tau_i - 1{target_j < pred_i}| * huber_kappa(target_j - pred_i) / kappa``.
    """
    chex.assert_equal_rank(
        [pred, target], custom_message="quantile_huber_loss: pred [..., M] and target [..., K] need the same rank"
    )
    chex.assert_equal_shape_prefix(
        [pred, target],
        pred.ndim - 1,
        custom_message="quantile_huber_loss: pred and target must share their leading axes",
    )
    num = pred.shape[-1]
    taus = (jnp.arange(num, dtype=jnp.float32) + 0.5) / num
    diff = target[..., None, :] - pred[..., :, None]  # [..., M, K]
    huber = optax.huber_loss(diff, delta=kappa)
    weight = jnp.abs(taus[:, None] - (diff < 0).astype(jnp.float32))
    return (weight * huber / kappa).mean()


def truncated_quantiles(quantiles: jax.Array, drop: int) -> jax.Array:
    """TQC's target atoms: pool ``quantiles [N, B, M]`` of N critics, sort, drop the ``drop``
    largest: ``-> [B, N*M - drop]``."""
    chex.assert_rank(
        quantiles, 3, custom_message="truncated_quantiles: quantiles must be [num_critics, batch, num_quantiles]"
    )
    num_critics, batch, num = quantiles.shape
    pooled = jnp.sort(jnp.moveaxis(quantiles, 0, 1).reshape(batch, num_critics * num), axis=-1)
    return pooled[:, : num_critics * num - drop]


def ensemble_mse(q: jax.Array, target: jax.Array) -> jax.Array:
    """Critic-ensemble regression loss: ``q [N, B]`` against ``target [B]``, half squared error
    averaged over the batch and summed over the N critics (each critic is fit independently)."""
    chex.assert_rank([q, target], [2, 1], custom_message="ensemble_mse: q must be [N, B] and target [B]")
    chex.assert_equal_shape_suffix([q, target], 1, custom_message="ensemble_mse: q [N, B] and target [B] must share B")
    return 0.5 * jnp.square(q - target[None]).mean(axis=1).sum()


def expectile_loss(diff: jax.Array, expectile: jax.Array | float) -> jax.Array:
    """IQL's asymmetric squared loss of ``diff = target - prediction`` (any shape), averaged:
    ``mean |expectile - 1{diff < 0}| * diff^2``. At 0.5 it is half the squared error."""
    weight = jnp.where(diff < 0, 1.0 - expectile, expectile)
    return (weight * jnp.square(diff)).mean()


def advantage_weights(advantage: jax.Array, temperature: jax.Array | float, max_weight: float = 100.0) -> jax.Array:
    """Advantage-weighted regression weights ``min(exp(temperature * advantage), max_weight)``
    (IQL's and AWAC's policy extraction), any shape, without gradient."""
    return jax.lax.stop_gradient(jnp.minimum(jnp.exp(temperature * advantage), max_weight))


def cql_gap(q_samples: jax.Array, q_data: jax.Array) -> jax.Array:
    """CQL's conservative term per critic: ``logsumexp`` over sampled actions minus the dataset
    action's value, averaged over the batch: ``q_samples [N, S, B]``, ``q_data [N, B] -> [N]``.

    For discrete actions ``q_samples`` are the values of all actions (exact logsumexp); for
    continuous ones, importance-weighted samples ``Q(s, a_i) - log p(a_i)``.
    """
    chex.assert_rank([q_samples, q_data], [3, 2], custom_message="cql_gap: q_samples [N, S, B], q_data [N, B]")
    return (jax.nn.logsumexp(q_samples, axis=1) - q_data).mean(axis=-1)


def bc_mse(action: jax.Array, data_action: jax.Array) -> jax.Array:
    """Behaviour cloning penalty ``mean (action - data_action)^2`` over batch and action
    dimensions (TD3+BC's): ``[B, A]`` each -> scalar."""
    chex.assert_equal_shape([action, data_action], custom_message="bc_mse: action and data_action must be [B, A]")
    return jnp.square(action - data_action).mean()


def gradient_similarity(grads: jax.Array) -> jax.Array:
    """EDAC's ensemble diversity term: the cosine similarity of every pair of critics' action
    gradients, summed over ordered pairs ``i != j``, divided by ``N - 1`` and averaged over the
    batch: ``grads [N, B, A] -> scalar`` (0 when N is 1)."""
    chex.assert_rank(grads, 3, custom_message="gradient_similarity: grads must be [num_critics, batch, action_dim]")
    num = grads.shape[0]
    if num < 2:
        return jnp.float32(0.0)
    unit = grads / (jnp.linalg.norm(grads, axis=-1, keepdims=True) + 1e-10)
    total = unit.sum(axis=0)  # [B, A]
    pairs = jnp.square(total).sum(-1) - jnp.square(unit).sum(axis=(0, 2))  # sum over i != j of <u_i, u_j>
    return (pairs / (num - 1)).mean()
