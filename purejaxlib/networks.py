"""Actor-critic MLPs (flax linen): separate actor and critic torsos, orthogonal initialization.

Networks only map observations to distribution parameters and values; losses live with the
algorithms and distributions in :mod:`purejaxlib.distributions`.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

ACTIVATIONS = {"tanh": nn.tanh, "relu": nn.relu, "elu": nn.elu, "gelu": nn.gelu, "swish": nn.swish}


def _orthonormal_columns(a: jax.Array) -> jax.Array:
    """Q of the QR decomposition of ``a [m, n]`` (m >= n) with R's diagonal made positive.

    Classical Gram-Schmidt applied twice per column (as accurate as Householder for the
    well-conditioned Gaussian matrices used here), in plain jnp ops.
    """
    n = a.shape[1]
    columns = jnp.arange(n)

    def body(j, q):
        v = jax.lax.dynamic_index_in_dim(a, j, axis=1, keepdims=False)
        earlier = (columns < j).astype(a.dtype)
        for _ in range(2):
            v = v - q @ ((q.T @ v) * earlier)
        return jax.lax.dynamic_update_index_in_dim(q, v / jnp.linalg.norm(v), j, axis=1)

    return jax.lax.fori_loop(0, n, body, jnp.zeros_like(a))


def orthogonal(scale: float = 1.0) -> nn.initializers.Initializer:
    """Orthogonal initializer for 2-D kernels ``[in, out]``, drawing the same matrices as
    ``flax.linen.initializers.orthogonal`` up to float rounding, without LAPACK.

    Why not flax's: under ``vmap`` (seeds) its QR is a batched LAPACK call, and jaxlib's
    batched QR kernel waits on the CPU worker pool it runs on; with several CPU devices each
    running one, nothing is left to do the work and the program deadlocks.
    """

    def init(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
        if len(shape) != 2:
            raise ValueError(f"orthogonal init expects a 2-D kernel shape, got {shape}")
        rows, cols = shape
        tall = rows >= cols
        a = jax.random.normal(key, (rows, cols) if tall else (cols, rows), dtype)
        q = _orthonormal_columns(a)
        return scale * (q if tall else q.T)

    return init


class MLP(nn.Module):
    """Dense layers with an activation after each hidden layer; ``[..., in] -> [..., out]``."""

    hidden: Sequence[int]
    out: int
    activation: str = "tanh"
    out_scale: float = 1.0

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = ACTIVATIONS[self.activation]
        for width in self.hidden:
            x = act(nn.Dense(width, kernel_init=orthogonal(np.sqrt(2)))(x))
        return nn.Dense(self.out, kernel_init=orthogonal(self.out_scale))(x)


class ActorCritic(nn.Module):
    """``obs [..., obs_dim] -> (mean_or_logits [..., A], log_std [A] or None, value [...])``.

    For continuous actions the log standard deviation is a state-independent parameter.
    """

    action_dim: int
    continuous: bool
    hidden: Sequence[int] = (64, 64)
    activation: str = "tanh"
    log_std_init: float = 0.0

    def setup(self) -> None:
        self.actor = MLP(self.hidden, self.action_dim, self.activation, out_scale=0.01)
        self.critic = MLP(self.hidden, 1, self.activation, out_scale=1.0)
        if self.continuous:
            self.log_std = self.param(
                "log_std", nn.initializers.constant(self.log_std_init), (self.action_dim,)
            )

    def __call__(self, obs: jax.Array):
        log_std = self.log_std if self.continuous else None
        return self.actor(obs), log_std, self.critic(obs)[..., 0]

    def value(self, obs: jax.Array) -> jax.Array:
        """Only the critic: ``[..., obs_dim] -> [...]``."""
        return self.critic(obs)[..., 0]
