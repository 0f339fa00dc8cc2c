"""How a value from a configuration is named in a problem, never echoed whole.

A value given in a configuration may be huge, or hostile. A problem message names its
type in configuration words (`kind_of`), or quotes it cut short (`shown`).
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["kind_of", "shown"]

_MAX_SHOWN = 60


def shown(text: str, limit: int = _MAX_SHOWN) -> str:
    """`text` quoted (its `repr`), cut to `limit` characters with `...`."""
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def kind_of(value: object) -> str:
    """A value's type in configuration words, never its content (it may be huge)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, (list, tuple)):
        return "a list"
    return type(value).__name__
