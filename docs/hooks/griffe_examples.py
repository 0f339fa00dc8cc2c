"""A griffe extension for the API reference: `Example:` sections render as examples.

The docstrings follow Google style, where `Example:` and `Examples:` are both a
section of examples; griffe reads only the plural as one (the singular becomes an
admonition, and its `>>>` lines turn into Markdown quotes). This renames the singular
before the docstrings are parsed, so doctests render as code. A reStructuredText
`Example::` (a literal block of code that is not a doctest) becomes an "Example"
admonition holding that code.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_SINGULAR = re.compile(r"^(\s*)Example:[ \t]*$", re.MULTILINE)
_LITERAL = re.compile(r"^(\s*)Example::[ \t]*$", re.MULTILINE)


class ExampleSections(griffe.Extension):
    """Rename `Example:` section headers to `Examples:` in every docstring."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:  # noqa: ARG002
        """Rewrite the docstring of each object as it is created."""
        if obj.docstring is not None:
            text = _SINGULAR.sub(r"\1Examples:", obj.docstring.value)
            obj.docstring.value = _LITERAL.sub(r"\1Example:", text)
