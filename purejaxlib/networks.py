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
            x = act(nn.Dense(width, kernel_init=nn.initializers.orthogonal(np.sqrt(2)))(x))
        return nn.Dense(self.out, kernel_init=nn.initializers.orthogonal(self.out_scale))(x)


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
