"""JSON from outside, parsed within bounds: the one `loads` for every reply and file.

A reply, an error body, a token reply or a secret file can be hostile: nested ten
thousand levels deep (the parser, and any later walk of the value, would raise a bare
`RecursionError`) or huge. `loads` refuses both with a `ValueError`
(`JsonBoundsError`), which each caller already maps to its own typed error
(a malformed response, an unreadable secret, an invalid configuration).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

__all__ = ["MAX_BYTES", "MAX_DEPTH", "JsonBoundsError", "loads"]

MAX_DEPTH = 64
"""The deepest nesting of arrays and objects accepted (real documents use under 10)."""
MAX_BYTES = 64 * 1024 * 1024
"""The largest document accepted by default."""


class JsonBoundsError(ValueError):
    """The document is nested too deeply or is too large."""


def loads(
    data: str | bytes,
    *,
    max_bytes: int = MAX_BYTES,
    max_depth: int = MAX_DEPTH,
    object_pairs_hook: Callable[[list[tuple[str, Any]]], Any] | None = None,
) -> object:
    """`json.loads`, refusing documents deeper than `max_depth` or larger than `max_bytes`.

    Raises:
        ValueError: Not JSON, or out of bounds (`JsonBoundsError`).

    Example:
        >>> loads('{"a": [1, 2]}')
        {'a': [1, 2]}
        >>> try:
        ...     loads("[" * 100 + "]" * 100)
        ... except JsonBoundsError as exc:
        ...     print(exc)
        JSON nested deeper than 64 levels
    """
    if len(data) > max_bytes:
        raise JsonBoundsError(f"JSON document larger than {max_bytes} bytes")
    try:
        value: object = json.loads(data, object_pairs_hook=object_pairs_hook)
    except RecursionError:
        raise JsonBoundsError(f"JSON nested deeper than {max_depth} levels") from None
    if isinstance(data, str):
        opening = data.count("[") + data.count("{")
    else:
        opening = data.count(b"[") + data.count(b"{")
    if opening > max_depth and _depth_exceeds(value, max_depth):
        raise JsonBoundsError(f"JSON nested deeper than {max_depth} levels")
    return value


def _depth_exceeds(value: object, limit: int) -> bool:
    """Whether containers nest deeper than `limit`, walked without recursion."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: list[object] | tuple[object, ...] = list(item.values())
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False
