"""Values written as text (a command line, a ``--grid`` list, an env name's options), read by type.

One reader for every such string, so ``true``, ``1e-3`` or ``64x64`` mean the same wherever they
are typed. Nothing is evaluated: a value that does not read as its type is an error naming it.

>>> parse_value("64x64", tuple[int, ...], "hidden")   # (64, 64)
>>> parse_field(ppo.Config, "anneal_lr", "false")      # False, by the field's annotation
"""

from __future__ import annotations

import typing
from typing import Any

TRUE, FALSE = ("true", "1"), ("false", "0")


def parse_value(text: str, kind: Any, what: str) -> Any:
    """``text`` read as ``kind``: ``bool`` (true/false/1/0, any case), ``int``, ``float``, ``str``
    (stripped), or a tuple of ints written ``64x64`` (``tuple[int, ...]``).

    Raises ValueError ``"<what>: cannot read '<text>' as <kind>"``. Other kinds give the text.
    """
    stripped = text.strip()
    try:
        if kind is bool:
            if stripped.lower() not in TRUE + FALSE:
                raise ValueError(text)
            return stripped.lower() in TRUE
        if kind is int:
            return int(stripped)
        if kind is float:
            return float(stripped)
        if typing.get_origin(kind) is tuple:  # e.g. hidden=64x64
            return tuple(int(part) for part in stripped.split("x"))
    except ValueError:
        name = getattr(kind, "__name__", None) if typing.get_origin(kind) is None else None
        raise ValueError(f"{what}: cannot read {text!r} as {name or kind}") from None
    return stripped


def parse_field(config_cls: type, name: str, text: str, what: str | None = None) -> Any:
    """``text`` read as field ``name`` of the dataclass ``config_cls`` by its annotation."""
    return parse_value(text, typing.get_type_hints(config_cls)[name], what or name)
