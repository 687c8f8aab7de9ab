"""'Did you mean' hints for unknown names (config fields, env names and params).

A leaf module (it imports no other part of purejaxlib at import time), so both
:mod:`purejaxlib.config` and :mod:`purejaxlib.envs` can use it without importing each other.

Fields that only some algorithms have are declared by the algorithms themselves: a Config class
sets ``features = {field: description}`` (see :class:`purejaxlib.config.ConfigBase`), which
:func:`register_features` records, so asking another algorithm for such a field names the module
that has it.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Iterable

# Names other libraries use for our fields, so a grid or flag written their way gets a pointer.
ALIASES = {
    "learning_rate": "lr",
    "entropy_coef": "ent_coef",
    "ent_coeff": "ent_coef",
    "value_coef": "vf_coef",
    "n_envs": "num_envs",
    "n_steps": "num_steps",
    "n_epochs": "update_epochs",
    "num_epochs": "update_epochs",
    "batch_size": "num_minibatches",
    "clip_range": "clip_eps",
    "lambda": "gae_lambda",
    "seed": "seeds",
}

_FEATURES: dict[str, tuple[str, str]] = {}  # field -> (description, module that implements it)


def register_features(features: dict[str, str], module: str) -> None:
    """Records that ``module`` implements the fields ``features`` (field -> description)."""
    for field, description in features.items():
        _FEATURES[field] = (description, module)


def _import_algorithms() -> None:
    """Imports every module of ``purejaxlib.algos`` (each registers its features); error path only."""
    try:
        package = importlib.import_module("purejaxlib.algos")
    except ImportError:
        return
    for info in pkgutil.iter_modules(package.__path__):
        try:
            importlib.import_module(f"{package.__name__}.{info.name}")
        except ImportError:  # an algorithm whose optional dependencies are missing
            continue


def feature_home(name: str) -> tuple[str, str] | None:
    """``(description, module)`` of the algorithm-specific field ``name``, or None."""
    if name not in _FEATURES:
        _import_algorithms()
    return _FEATURES.get(name)


def close_matches(name: str, options: Iterable[str]) -> str:
    """A short 'did you mean' phrase for error messages about ``name`` (not among ``options``)."""
    options = list(options)
    if name not in options:
        home = feature_home(name)
        if home is not None:
            return f"{home[0]} are implemented by {home[1]} only"
    alias = ALIASES.get(name)
    if alias is not None and (alias in options or alias == "seeds"):
        return f"did you mean {alias!r}?"
    near = difflib.get_close_matches(name, options, n=3, cutoff=0.5)
    if near:
        return f"did you mean {', '.join(repr(n) for n in near)}?"
    return f"valid names are: {', '.join(options)}"
