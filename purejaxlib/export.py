"""Export a trained policy to a directory that runs without the training code.

``save_policy(path, config, state)`` writes ``path/policy.jaxexport`` (the policy's compiled
``act(obs, key) -> action`` as a serialized :mod:`jax.export` module, a flatbuffer of StableHLO
with the trained parameters baked in as constants) and ``path/policy.json`` (what it expects and
returns, where it came from). ``load_policy(path)`` needs only jax and numpy::

    policy = load_policy("runs/cartpole")
    action = policy(obs)               # obs: numpy [*obs_shape] -> int / [*action_shape]
    actions = policy(batch_of_obs)     # [batch, *obs_shape] -> [batch] / [batch, *action_shape]

No pickle and no ``eval``: the module is deserialized by jax, the metadata is JSON.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

__all__ = ["save_policy", "load_policy", "Policy", "FORMAT", "FORMAT_VERSION"]

FORMAT = "purejaxlib.policy"
FORMAT_VERSION = 1
MODULE_FILE = "policy.jaxexport"
METADATA_FILE = "policy.json"


# ---------------------------------------------------------------------------------------------
# Saving (needs the algorithm's module; imported lazily so loading never pulls in training code)


def _json_safe(value: Any) -> Any:
    """Numpy/jax values (possibly nested in dicts, lists, tuples) as plain Python for JSON."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (np.ndarray, np.generic, jax.Array)):
        return np.asarray(value).tolist()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def _env_params_dict(env_params: Any) -> dict[str, Any] | None:
    """The resolved env params (defaults plus overrides) as JSON values, numeric fields only."""
    if not dataclasses.is_dataclass(env_params):
        return None
    out = {}
    for f in dataclasses.fields(env_params):
        raw = np.asarray(getattr(env_params, f.name))
        if raw.dtype.kind in "biuf":
            out[f.name] = raw.tolist()
    return out


def _check_unbatched_config(config: Any) -> None:
    """Refuses a sweep's batched config: its traced fields carry leading member axes."""
    from purejaxlib import envs as envs_lib
    from purejaxlib.config import is_static_field

    for f in dataclasses.fields(config):
        if is_static_field(f):
            continue
        value = getattr(config, f.name)
        if any(isinstance(v, jax.core.Tracer) for v in jax.tree.leaves(value)):
            raise TypeError(f"save_policy needs concrete values, but config.{f.name} is traced (call it outside jit)")
        if f.name == "env_params" and value:
            _, defaults = envs_lib.make(config.env)
            for key, v in value.items():
                if np.ndim(v) > np.ndim(getattr(defaults, key)):
                    raise ValueError(
                        f"config.env_params[{key!r}] has shape {np.shape(v)}, with leading axes of a sweep's batch; "
                        "export one member: the config that member was trained with (e.g. the base config with "
                        f"env_params={{{key!r}: value}})"
                    )
        elif f.name != "env_params" and np.ndim(value) > (1 if f.name in config.vector_fields else 0):
            raise ValueError(
                f"config.{f.name} has shape {np.shape(value)}: this is a sweep's batched config; export one member "
                f"with a config whose {f.name} is that member's scalar value (config.replace({f.name}=...))"
            )


def _check_single_state(module: Any, config: Any, state: Any) -> None:
    """Refuses a sweep's state (leaves with leading member axes) by comparing with ``init``'s shapes."""
    expected = jax.eval_shape(module.init, config, jax.random.key(0))
    got_leaves, got_tree = jax.tree.flatten(state)
    want_leaves, want_tree = jax.tree.flatten(expected)
    name = module.__name__.rsplit(".", 1)[-1]
    if got_tree != want_tree:  # type: ignore[operator]  # jaxlib's PyTreeDef has no type stub
        raise TypeError(
            f"state does not have the structure of {name}.init(config, key)'s state; pass one agent's training "
            f"state for this config: {name}.train(config, key).state, or what {name}.step returned"
        )
    for got, want in zip(got_leaves, want_leaves):
        shape = tuple(np.shape(got))
        if shape == tuple(want.shape):
            continue
        lead = shape[: len(shape) - len(want.shape)]
        if len(shape) > len(want.shape) and shape[len(lead) :] == tuple(want.shape):
            index = ", ".join("i" if n == 0 else f"i{n}" for n in range(len(lead)))
            raise ValueError(
                f"state has leading axes {lead} in front of every leaf: it holds several agents (a sweep's or "
                f"vmapped state). Export one member: save_policy(path, config, jax.tree.map(lambda x: x[{index}], "
                "state)), with that member's (unbatched) config"
            )
        raise ValueError(f"a state leaf has shape {shape} where {name}.init gives {tuple(want.shape)}")


def _action_metadata(spec: Any) -> dict[str, Any]:
    if spec.discrete:
        return {"discrete": True, "num_actions": int(spec.num_actions)}
    return {
        "discrete": False,
        "shape": list(spec.action_shape),
        "low": np.asarray(spec.action_low).tolist(),
        "high": np.asarray(spec.action_high).tolist(),
    }


def _default_platforms() -> tuple[str, ...]:
    """CPU, so a policy runs anywhere, plus the platform it was trained on ("cuda", not "gpu")."""
    here = jax.export.default_export_platform()
    return ("cpu",) if here == "cpu" else ("cpu", here)


def save_policy(
    path: str | Path, config: Any, state: Any, *, deterministic: bool = True, platforms: Sequence[str] | None = None
) -> Path:
    """Writes ``path/policy.jaxexport`` and ``path/policy.json``; returns ``path``.

    ``state`` is one agent's training state (``train(config, key).state`` or a ``step`` result),
    not a sweep's batch of them. The exported ``act`` takes observations ``[b, *obs_shape]`` for
    any batch size ``b`` and a raw uint32 PRNG key (used only when ``deterministic=False``).
    ``platforms`` defaults to CPU plus the current backend (e.g. ``("cpu", "cuda")``).
    """
    from purejaxlib import envs as envs_lib
    from purejaxlib.evaluation import algorithm_module

    module = algorithm_module(config)
    _check_unbatched_config(config)
    _check_single_state(module, config, state)
    spec = config.spec
    env, env_params = envs_lib.from_config(config)
    obs_dtype = np.dtype(jax.dtypes.canonicalize_dtype(env.observation_space(env_params).dtype))
    act = module.policy(config, state, deterministic=bool(deterministic))
    if hasattr(act, "initial_carry"):
        raise TypeError(
            f"save_policy exports stateless policies act(obs, key); {type(config).__qualname__} has "
            f"recurrent={getattr(config, 'recurrent', '?')!r}, whose policy also carries a cell state, "
            "which the exported format has no place for yet; save the training state with "
            "purejaxlib.checkpoint instead"
        )
    sample_key = jax.random.key(0)
    key_impl = str(jax.random.key_impl(sample_key))
    key_data = jax.random.key_data(sample_key)

    def exported_act(obs: jax.Array, key_data: jax.Array) -> jax.Array:
        return act(obs, jax.random.wrap_key_data(key_data, impl=key_impl))

    platforms = tuple(platforms) if platforms is not None else _default_platforms()
    (batch,) = jax.export.symbolic_shape("b")
    arg_specs = (
        jax.ShapeDtypeStruct((batch, *spec.obs_shape), obs_dtype),
        jax.ShapeDtypeStruct(key_data.shape, key_data.dtype),
    )
    exported = jax.export.export(jax.jit(exported_act), platforms=platforms)(*arg_specs)
    blob = bytes(exported.serialize())
    (out,) = exported.out_avals
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "algorithm": module.__name__,
        "env": config.env,
        "env_params": _env_params_dict(env_params),
        "observation": {"shape": list(spec.obs_shape), "dtype": obs_dtype.name},
        "action": {**_action_metadata(spec), "dtype": np.dtype(out.dtype).name},
        "key": {"impl": key_impl, "shape": list(key_data.shape), "dtype": np.dtype(key_data.dtype).name},
        "deterministic": bool(deterministic),
        "config_class": f"{type(config).__module__}.{type(config).__qualname__}",
        "config": _json_safe(config.to_dict()),
        "jax_version": jax.__version__,
        "platforms": list(exported.platforms),
        "sha256": hashlib.sha256(blob).hexdigest(),
    }
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / MODULE_FILE).write_bytes(blob)
    # The metadata last: a directory with a complete policy.json has its module written too.
    (path / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
    return path


# ---------------------------------------------------------------------------------------------
# Loading (jax and numpy only)


class Policy:
    """A loaded policy: ``policy(obs, key=None) -> action`` on numpy observations.

    ``obs`` is one observation ``[*obs_shape]`` (returns an ``int`` for discrete actions, an array
    ``[*action_shape]`` otherwise) or a batch ``[batch, *obs_shape]`` (returns ``[batch]`` or
    ``[batch, *action_shape]``). ``key`` (an int seed or a jax PRNG key) drives a stochastic
    policy; when omitted, each call takes the next key of a sequence started from ``seed``.
    """

    def __init__(self, exported: jax.export.Exported, metadata: dict[str, Any], seed: int = 0):
        self.metadata = metadata
        self.observation_shape: tuple[int, ...] = tuple(metadata["observation"]["shape"])
        self.observation_dtype = np.dtype(metadata["observation"]["dtype"])
        self.deterministic: bool = bool(metadata["deterministic"])
        self.discrete: bool = bool(metadata["action"]["discrete"])
        self._exported = exported
        self._key_impl: str = metadata["key"]["impl"]
        self._key_shape = tuple(metadata["key"]["shape"])
        self._key_dtype = np.dtype(metadata["key"]["dtype"])
        self._device = _pick_device(tuple(exported.platforms))
        # One compile per batch size; the symbolic batch dim is specialized at call time.
        self._call = jax.jit(exported.call)
        self._base_key = jax.random.key(seed, impl=self._key_impl)
        self._calls = 0

    def __repr__(self) -> str:
        kind = "deterministic" if self.deterministic else "stochastic"
        return (
            f"Policy({self.metadata['algorithm'].rsplit('.', 1)[-1]} on {self.metadata['env']}, {kind}, "
            f"obs {self.observation_shape})"
        )

    def _observations(self, obs: Any) -> tuple[np.ndarray, bool]:
        """``obs`` as ``[batch, *obs_shape]`` of the exported dtype, and whether it was one observation."""
        array = np.asarray(obs)
        shape = self.observation_shape
        if array.shape == shape:
            return array.astype(self.observation_dtype, copy=False)[None], True
        if array.ndim == len(shape) + 1 and array.shape[1:] == shape:
            return array.astype(self.observation_dtype, copy=False), False
        raise ValueError(
            f"observation has shape {array.shape}; expected {shape} (one observation) or "
            f"(batch, {', '.join(map(str, shape))}) (a batch)"
        )

    def _key_data(self, key: Any) -> np.ndarray:
        """Raw key data for the exported function; a fresh key per call when none is given."""
        if key is None:
            if self.deterministic:
                return np.zeros(self._key_shape, self._key_dtype)  # unused by the exported program
            # fold_in with a counter never repeats a key (and keeps the sequence reproducible).
            key = jax.random.fold_in(self._base_key, self._calls)
            self._calls += 1
        elif isinstance(key, (int, np.integer)) and not isinstance(key, (bool, np.bool_)):
            key = jax.random.key(int(key), impl=self._key_impl)
        if isinstance(key, jax.Array) and jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
            if str(jax.random.key_impl(key)) != self._key_impl:
                raise ValueError(
                    f"key uses PRNG {jax.random.key_impl(key)}; the policy was exported with {self._key_impl}"
                )
            key = jax.random.key_data(key)
        data = np.asarray(key)
        if data.shape != self._key_shape or data.dtype != self._key_dtype:
            raise ValueError(
                f"key must be an int seed or a jax PRNG key ({self._key_impl}: raw data {self._key_shape} "
                f"{self._key_dtype.name}); got {type(key).__name__} of shape {data.shape} and dtype {data.dtype}"
            )
        return data

    def __call__(self, obs: Any, key: Any = None) -> int | np.ndarray:
        batch, single = self._observations(obs)
        key_data = self._key_data(key)
        if batch.shape[0] == 0:  # symbolic dims are >= 1
            (out,) = self._exported.out_avals
            return np.zeros((0, *out.shape[1:]), out.dtype)
        with jax.default_device(self._device):
            actions = np.asarray(self._call(batch, key_data))
        if not single:
            return actions
        return int(actions[0]) if self.discrete else actions[0]


def _pick_device(platforms: tuple[str, ...]) -> jax.Device:
    """The default device when the module was exported for its platform, else a CPU device."""
    here = jax.export.default_export_platform()
    if here in platforms:
        return jax.devices()[0]
    if "cpu" in platforms:
        return jax.devices("cpu")[0]
    raise RuntimeError(
        f"the policy was exported for platforms {list(platforms)}, and this machine runs {here}; "
        "export it again with platforms including 'cpu' or this one"
    )


def _read_metadata(path: Path) -> dict[str, Any]:
    try:
        metadata = json.loads((path / METADATA_FILE).read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path / METADATA_FILE} is not valid JSON ({err}); the export is corrupted") from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise ValueError(f"{path / METADATA_FILE} does not describe a purejaxlib policy (no format {FORMAT!r})")
    version = metadata.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{path} holds a policy in format version {version!r}; this purejaxlib reads version {FORMAT_VERSION} "
            "(export it again with this version, or load it with the purejaxlib that wrote it)"
        )
    return metadata


def load_policy(path: str | Path, *, seed: int = 0) -> Policy:
    """Reads a directory written by :func:`save_policy`; checks the module's sha256.

    ``seed`` starts the key sequence a stochastic policy uses on calls without a key.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"no exported policy at {path}: not a directory (save_policy writes one)")
    missing = [name for name in (METADATA_FILE, MODULE_FILE) if not (path / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{path} is not a complete exported policy: missing {', '.join(missing)}")
    metadata = _read_metadata(path)
    blob = (path / MODULE_FILE).read_bytes()
    digest = hashlib.sha256(blob).hexdigest()
    if digest != metadata.get("sha256"):
        raise ValueError(
            f"{path / MODULE_FILE} is corrupted or was replaced: its sha256 is {digest}, "
            f"but {METADATA_FILE} records {metadata.get('sha256')}"
        )
    try:
        exported = jax.export.deserialize(bytearray(blob))
    except Exception as err:  # flatbuffer / StableHLO errors; the digest matched, so a jax version issue
        raise ValueError(
            f"jax {jax.__version__} cannot read {path / MODULE_FILE} "
            f"(written by jax {metadata.get('jax_version')}): {err}"
        ) from err
    return Policy(exported, metadata, seed=seed)
