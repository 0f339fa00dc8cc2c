"""JSON from outside, parsed within bounds: the one `loads` for every reply and file.

A reply, an error body, a token reply or a secret file can be hostile: nested ten
thousand levels deep (the parser, and any later walk of the value, would raise a bare
`RecursionError`) or huge. `loads` refuses both with a `ValueError`
(`JsonBoundsError`), which each caller already maps to its own typed error
(a malformed response, an unreadable secret, an invalid configuration).
"""

from __future__ import annotations

import json
import re
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
    max_depth: int | None = MAX_DEPTH,
    object_pairs_hook: Callable[[list[tuple[str, Any]]], Any] | None = None,
) -> object:
    """`json.loads`, refusing documents deeper than `max_depth` or larger than `max_bytes`.

    `max_depth=None` keeps only the parser's own limit (its `RecursionError`, as a
    `JsonBoundsError`): for API replies, whose values are structured into typed models
    that refuse a container where text belongs without recursing into it, and where a
    second pass over every page would double the cost of parsing.

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
    if max_depth is None:
        return value
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if raw.count(b"[") + raw.count(b"{") > max_depth and _too_deep(raw, max_depth):
        raise JsonBoundsError(f"JSON nested deeper than {max_depth} levels")
    return value


# Every byte but brackets and quotes: what is left is the document's skeleton.
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'[]{}"')
_INNERMOST = re.compile(rb"\[\]|\{\}")


def _too_deep(data: bytes, limit: int) -> bool:
    """Whether a valid JSON document nests deeper than `limit`, in C-speed passes.

    The skeleton (brackets only: escaped backslashes and quotes dropped first, then
    everything but brackets and quotes, then the strings) loses one level of nesting per
    pass that deletes its innermost `[]` and `{}` pairs; a document still holding
    brackets after `limit` passes is deeper than that.
    """
    if b"\\" in data:
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    # Quotes now come in pairs: every other piece between them is a string's content.
    skeleton = b"".join(data.translate(None, _NOT_STRUCTURE).split(b'"')[::2])
    for _ in range(limit):
        skeleton = _INNERMOST.sub(b"", skeleton)
        if not skeleton:
            return False
    return True
