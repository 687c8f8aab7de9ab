"""Actor-critic networks (flax linen): separate actor and critic MLPs, orthogonal initialization, and
an observation torso chosen from the observation's shape: a CNN for ``[H, W, C]`` images and grids
(:func:`image_shape`, :class:`CNN`), nothing for vectors.

Networks only map observations to distribution parameters and values; losses live with the
algorithms and distributions in :mod:`purejaxlib.distributions`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

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
    """Orthogonal initializer for kernels ``[in, out]`` (conv kernels ``[..., in, out]`` as the matrix
    ``[prod(shape[:-1]), out]``), drawing the same matrices as
    ``flax.linen.initializers.orthogonal`` up to float rounding, without LAPACK.

    Why not flax's: under ``vmap`` (seeds) its QR is a batched LAPACK call, and jaxlib's
    batched QR kernel waits on the CPU worker pool it runs on; with several CPU devices each
    running one, nothing is left to do the work and the program deadlocks.
    """

    def init(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
        if len(shape) < 2:
            raise ValueError(f"orthogonal init expects a kernel of rank >= 2, got shape {shape}")
        # conv kernels [..., in, out]: orthogonal as the matrix [prod(shape[:-1]), out], as flax's
        rows, cols = int(np.prod(shape[:-1])), int(shape[-1])
        tall = rows >= cols
        a = jax.random.normal(key, (rows, cols) if tall else (cols, rows), dtype)
        q = _orthonormal_columns(a)
        return jnp.reshape(scale * (q if tall else q.T), shape)

    return init


@jax.custom_vjp
def dense_matmul(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """``x [..., in] @ kernel [in, out]``, with a kernel gradient suited to XLA:CPU.

    The kernel gradient ``x^T g`` contracts both operands over their leading (sample) axis, which
    XLA:CPU hands to Eigen's generic contraction (packing, threads) rather than its fast small-matmul
    library. On CPU the backward pass lays ``x^T [in, B]`` out in memory first, so the product is a
    plain row-major matmul; other platforms keep the usual gradient.
    """
    return x @ kernel


def _dense_fwd(x: jax.Array, kernel: jax.Array):
    return x @ kernel, (x, kernel)


def _dense_bwd(res, g: jax.Array):
    x, kernel = res
    x2, g2 = x.reshape(-1, x.shape[-1]), g.reshape(-1, g.shape[-1])
    # optimization_barrier keeps XLA from folding the transpose back into the dot.
    laid_out = lambda x2, g2: jax.lax.optimization_barrier(x2.T) @ g2
    kernel_grad = jax.lax.platform_dependent(x2, g2, cpu=laid_out, default=lambda x2, g2: x2.T @ g2)
    return g @ kernel.T, kernel_grad


dense_matmul.defvjp(_dense_fwd, _dense_bwd)


TORCH_KERNEL_INIT = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")
"""PyTorch's ``nn.Linear`` kernel initialization: U(+-1/sqrt(fan_in))."""


def torch_bias_init(fan_in: int) -> nn.initializers.Initializer:
    """PyTorch's ``nn.Linear`` bias initialization: U(+-1/sqrt(fan_in))."""
    bound = 1.0 / np.sqrt(fan_in)

    def init(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


class Dense(nn.Module):
    """``nn.Dense`` (same parameters: ``kernel [in, out]``, ``bias [out]``) computed with :func:`dense_matmul`."""

    features: int
    kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
    uniform_bias: bool = False
    """Bias drawn from U(+-1/sqrt(fan_in)) (PyTorch's ``nn.Linear``) instead of zeros."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param("kernel", self.kernel_init, (x.shape[-1], self.features))
        bias_init = torch_bias_init(x.shape[-1]) if self.uniform_bias else nn.initializers.zeros_init()
        bias = self.param("bias", bias_init, (self.features,))
        return dense_matmul(jnp.asarray(x, kernel.dtype), kernel) + bias


class MLP(nn.Module):
    """Dense layers with an activation after each hidden layer; ``[..., in] -> [..., out]``.

    ``layer_norm`` puts a LayerNorm before each hidden activation (PQN, and off-policy critics at
    high update-to-data ratios). ``orthogonal_init=False`` keeps flax's default (LeCun normal)
    kernels, which the off-policy methods were tuned with.
    """

    hidden: Sequence[int]
    out: int
    activation: str = "tanh"
    out_scale: float = 1.0
    layer_norm: bool = False
    orthogonal_init: bool = True
    torch_init: bool = False
    """With ``orthogonal_init=False``: PyTorch's ``nn.Linear`` initialization (kernel and bias
    U(+-1/sqrt(fan_in))) instead of flax's LeCun normal kernels and zero biases."""
    image: tuple[int, int, int] | None = None
    """``[H, W, C]``: a :class:`CNN` torso reads the input before the dense layers (:func:`image_shape`)."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.image is not None:
            x = CNN(self.image)(x)
        act = ACTIVATIONS[self.activation]
        plain = TORCH_KERNEL_INIT if self.torch_init else nn.initializers.lecun_normal()
        uniform_bias = self.torch_init and not self.orthogonal_init
        hidden_init = orthogonal(np.sqrt(2)) if self.orthogonal_init else plain
        out_init = orthogonal(self.out_scale) if self.orthogonal_init else plain
        for width in self.hidden:
            x = Dense(width, kernel_init=hidden_init, uniform_bias=uniform_bias)(x)
            if self.layer_norm:
                x = nn.LayerNorm()(x)
            x = act(x)
        return Dense(self.out, kernel_init=out_init, uniform_bias=uniform_bias)(x)


TORSOS = ("auto", "mlp", "cnn")
"""The ``torso`` choices: ``"auto"`` (a CNN for rank-3 ``[H, W, C]`` observations, the MLP alone for
the rest), ``"mlp"`` (always the flattened vector) and ``"cnn"`` (rank 2 ``[H, W]`` or 3)."""


def image_shape(obs_shape: Sequence[int], torso: str) -> tuple[int, int, int] | None:
    """``[H, W, C]`` that the CNN torso unflattens observations to, or None where the MLP reads the
    flat vector. Raises ValueError for an unknown ``torso`` or ``"cnn"`` on a vector observation."""
    if torso not in TORSOS:
        raise ValueError(f"torso must be one of {TORSOS}, got {torso!r}")
    shape = tuple(int(d) for d in obs_shape)
    if torso == "mlp" or (torso == "auto" and len(shape) != 3):
        return None
    if len(shape) == 2:
        return (shape[0], shape[1], 1)
    if len(shape) != 3:
        raise ValueError(f"torso 'cnn' needs [H, W] or [H, W, C] observations, these have shape {list(shape)}")
    return (shape[0], shape[1], shape[2])


def conv_layers(image: Sequence[int]) -> tuple[tuple[int, int, int], ...]:
    """``(features, kernel, stride)`` of each conv layer for an ``[H, W, C]`` image: for small grids
    (MinAtar's 10x10, MiniGrid views) MinAtar's reference torso, one 3x3 conv of 16 filters at
    stride 1 (with 'SAME' padding below 5x5); from 32x32 up (Craftax pixels) the DQN Nature torso,
    8x8/4, 4x4/2 and 3x3/1 convs of 32, 64 and 64 filters."""
    if min(image[0], image[1]) >= 32:
        return ((32, 8, 4), (64, 4, 2), (64, 3, 1))
    return ((16, 3, 1),)


class CNN(nn.Module):
    """Flat observations ``[..., H*W*C]`` -> ``[..., features]``: unflattened to ``image`` (row-major,
    as :meth:`purejaxlib.envs.EnvSpec.flatten` flattened them), :func:`conv_layers` with ReLU,
    flattened again. The dense layers that follow are the network's MLP."""

    image: tuple[int, int, int]

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        lead = x.shape[:-1]
        x = jnp.reshape(x, (-1, *self.image))
        small = min(self.image[0], self.image[1]) < 5
        for features, kernel, stride in conv_layers(self.image):
            conv = nn.Conv(
                features, (kernel, kernel), (stride, stride), padding="SAME" if small else "VALID",
                kernel_init=orthogonal(np.sqrt(2)),
            )  # fmt: skip
            x = nn.relu(conv(x))
        return jnp.reshape(x, (*lead, -1))


def torso(image: tuple[int, int, int] | None) -> Any:
    """The observation torso: a :class:`CNN` for an image, else the identity (no parameters)."""
    return CNN(image) if image is not None else (lambda x: x)


class ActorCritic(nn.Module):
    """``obs [..., obs_dim] -> (mean_or_logits [..., A], log_std [A] or None, value [...])``.

    For continuous actions the log standard deviation is a state-independent parameter. With a
    multi-agent ``layout`` (:class:`purejaxlib.envs.AgentLayout`) ``obs`` are agent rows: the actor
    reads the agent's id and observation, the critic the same or, ``centralized``, the id and the
    global state (MAPPO), and illegal actions (the row's action mask) get logits of -1e9.
    """

    action_dim: int
    continuous: bool
    hidden: Sequence[int] = (64, 64)
    activation: str = "tanh"
    log_std_init: float = 0.0
    layout: Any = None
    centralized: bool = False
    image: tuple[int, int, int] | None = None
    """``[H, W, C]``: a CNN torso shared by actor and critic reads the observations (:func:`image_shape`)."""

    def setup(self) -> None:
        self.torso = torso(self.image)
        self.actor = MLP(self.hidden, self.action_dim, self.activation, out_scale=0.01)
        self.critic = MLP(self.hidden, 1, self.activation, out_scale=1.0)
        if self.continuous:
            self.log_std = self.param("log_std", nn.initializers.constant(self.log_std_init), (self.action_dim,))

    def __call__(self, obs: jax.Array):
        log_std = self.log_std if self.continuous else None
        if self.layout is None:
            x = self.torso(obs)
            return self.actor(x), log_std, self.critic(x)[..., 0]
        out = self.actor(self.layout.actor_input(obs))
        mask = self.layout.action_mask(obs)
        if mask is not None:
            out = jnp.where(mask, out, -1e9)
        return out, log_std, self.value(obs)

    def value(self, obs: jax.Array) -> jax.Array:
        """Only the critic: ``[..., obs_dim] -> [...]``."""
        if self.layout is not None:
            obs = self.layout.critic_input(obs, self.centralized)
        return self.critic(self.torso(obs))[..., 0]


class QNetwork(nn.Module):
    """Discrete action values: ``obs [..., obs_dim] -> Q [..., num_actions]``."""

    num_actions: int
    hidden: Sequence[int] = (64, 64)
    activation: str = "relu"
    layer_norm: bool = False
    torch_init: bool = False
    image: tuple[int, int, int] | None = None
    """``[H, W, C]``: a CNN torso reads the observations first (:func:`image_shape`)."""

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        mlp = MLP(
            self.hidden, self.num_actions, self.activation, layer_norm=self.layer_norm, orthogonal_init=False,
            torch_init=self.torch_init,
        )  # fmt: skip
        return mlp(torso(self.image)(obs))


class Critic(nn.Module):
    """Continuous action values: ``(obs [..., obs_dim], action [..., A]) -> [..., out]``.

    ``out`` is 1 for a scalar Q (squeezed to ``[...]``) or the number of quantiles (TQC).
    """

    hidden: Sequence[int] = (256, 256)
    activation: str = "relu"
    layer_norm: bool = False
    out: int = 1
    torch_init: bool = False
    image: tuple[int, int, int] | None = None
    """``[H, W, C]``: a CNN torso reads the observations before they meet the action."""

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        x = jnp.concatenate([torso(self.image)(obs), action], axis=-1)
        mlp = MLP(
            self.hidden, self.out, self.activation, layer_norm=self.layer_norm, orthogonal_init=False,
            torch_init=self.torch_init,
        )  # fmt: skip
        q = mlp(x)
        return q[..., 0] if self.out == 1 else q


class DeterministicActor(nn.Module):
    """``obs [..., obs_dim] -> action [..., A]`` in [-1, 1] (tanh); the env rescales (TD3, DDPG)."""

    action_dim: int
    hidden: Sequence[int] = (256, 256)
    activation: str = "relu"
    image: tuple[int, int, int] | None = None

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        mlp = MLP(self.hidden, self.action_dim, self.activation, orthogonal_init=False)
        return jnp.tanh(mlp(torso(self.image)(obs)))


class GaussianActor(nn.Module):
    """``obs [..., obs_dim] -> (mean [..., A], log_std [..., A])``, log_std clipped to
    ``[log_std_min, log_std_max]`` (the SAC policy before its tanh squash)."""

    action_dim: int
    hidden: Sequence[int] = (256, 256)
    activation: str = "relu"
    log_std_min: float = -5.0
    log_std_max: float = 2.0
    torch_init: bool = False
    image: tuple[int, int, int] | None = None

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        mlp = MLP(self.hidden, 2 * self.action_dim, self.activation, orthogonal_init=False, torch_init=self.torch_init)
        out = mlp(torso(self.image)(obs))
        mean, log_std = jnp.split(out, 2, axis=-1)
        return mean, jnp.clip(log_std, self.log_std_min, self.log_std_max)


def ensemble_init(module: nn.Module, key: jax.Array, size: int, *inputs: jax.Array):
    """Parameters of ``size`` independently initialized copies of ``module``, stacked on axis 0."""
    return jax.vmap(lambda k: module.init(k, *inputs))(jax.random.split(key, size))


def ensemble_apply(module: nn.Module, params, *inputs: jax.Array) -> jax.Array:
    """Applies every member of a stacked ensemble to the same inputs: ``[size, ...]``.

    vmap over the parameters turns the members' matmuls into one batched matmul.
    """
    return cast(jax.Array, jax.vmap(lambda p: module.apply(p, *inputs))(params))


CELLS = ("gru", "lstm")


def _make_cell(cell: str, size: int) -> nn.RNNCellBase:
    # flax's default recurrent init is its LAPACK-QR orthogonal, which deadlocks under vmap on
    # few-core CPUs (see orthogonal above); ours draws the same matrices without LAPACK.
    if cell == "gru":
        return nn.GRUCell(size, recurrent_kernel_init=orthogonal())
    if cell == "lstm":
        return nn.OptimizedLSTMCell(size, recurrent_kernel_init=orthogonal())
    raise ValueError(f"cell must be one of {CELLS}, got {cell!r}")


def initial_carry(cell: str, size: int, batch: int):
    """Zero recurrent state for ``batch`` sequences: ``[batch, size]`` (GRU) or a pair of them (LSTM)."""
    zeros = jnp.zeros((batch, size), jnp.float32)
    return (zeros, zeros) if cell == "lstm" else zeros


class RecurrentActorCritic(nn.Module):
    """One step of a recurrent actor-critic:
    ``(carry, obs [N, obs_dim], first [N] bool) -> (carry, (mean_or_logits [N, A], log_std [A] or None, value [N]))``.

    ``obs`` is embedded by a dense layer of ``hidden[0]`` units, fed to a GRU or LSTM cell of
    ``cell_size`` units whose output goes to separate actor and critic heads (``hidden[1:]`` layers
    each). Where ``first`` is set (the observation opens an episode) the carry is zeroed before the
    cell reads it, so no memory crosses an episode boundary.
    """

    action_dim: int
    continuous: bool
    hidden: Sequence[int] = (64, 64)
    activation: str = "tanh"
    log_std_init: float = 0.0
    cell: str = "gru"
    cell_size: int = 64
    image: tuple[int, int, int] | None = None
    """``[H, W, C]``: a CNN torso reads the observations before the embedding."""

    @nn.compact
    def __call__(self, carry, obs: jax.Array, first: jax.Array):
        carry = jax.tree.map(lambda c: jnp.where(first[:, None], jnp.zeros_like(c), c), carry)
        obs = torso(self.image)(obs)
        x = ACTIVATIONS[self.activation](nn.Dense(self.hidden[0], kernel_init=orthogonal(np.sqrt(2)))(obs))
        carry, x = _make_cell(self.cell, self.cell_size)(carry, x)
        logits = MLP(self.hidden[1:], self.action_dim, self.activation, out_scale=0.01)(x)
        value = MLP(self.hidden[1:], 1, self.activation, out_scale=1.0)(x)[..., 0]
        log_std = None
        if self.continuous:
            log_std = self.param("log_std", nn.initializers.constant(self.log_std_init), (self.action_dim,))
        return carry, (logits, log_std, value)


def unroll(module: nn.Module, params, carry, obs: jax.Array, first: jax.Array):
    """Runs ``module`` along time-major sequences ``obs [T, N, obs_dim]``, ``first [T, N]`` from
    ``carry`` (the state before step 0); returns the final carry and the step outputs, each ``[T, N, ...]``
    (``log_std`` stays ``[A]``)."""

    def one(carry, inputs):
        carry, (logits, log_std, value) = module.apply(params, carry, *inputs)
        return carry, (logits, value, log_std)

    carry, (logits, value, log_std) = jax.lax.scan(one, carry, (obs, first))
    return carry, (logits, None if log_std is None else log_std[0], value)
