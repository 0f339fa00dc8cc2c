"""The SCIM filter subset the account API supports: a parser and an evaluator.

Grammar (RFC 7644 section 3.4.2.2, cut down to what Databricks documents)::

    filter     := term ("or" term)*
    term       := factor ("and" factor)*
    factor     := "(" filter ")" | comparison
    comparison := attribute ("eq" | "ne" | "co" | "sw") value
    value      := JSON string | "true" | "false"

Keywords and attribute names are case-insensitive; `and` binds tighter than `or`.
Anything else (`pr`, `gt`, `not`, `[...]` paths, numbers, `null`, unbalanced quotes or
parentheses, nesting deeper than a bound) is a `FilterError`: the caller answers it with
a 400 `InvalidFilter`, never a crash.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import Generic, TypeVar

import attrs

__all__ = [
    "SUPPORTED_OPERATORS",
    "Attribute",
    "AttributeValue",
    "Comparison",
    "FilterError",
    "FilterValue",
    "Junction",
    "Node",
    "candidates",
    "compile_filter",
    "count_nodes",
    "operators",
    "parse_filter",
]

R = TypeVar("R")

FilterValue = str | bool
"""A literal in a filter."""

AttributeValue = str | bool | tuple[str, ...] | None
"""The value of a resource attribute a filter compares with (a tuple if multi-valued)."""

SUPPORTED_OPERATORS = frozenset({"eq", "ne", "co", "sw"})
_KNOWN_UNSUPPORTED = frozenset({"pr", "gt", "ge", "lt", "le", "ew", "not"})
_ATTRIBUTE = re.compile(r"[A-Za-z][A-Za-z0-9_$-]*(\.[A-Za-z][A-Za-z0-9_$-]*)?\Z")
_MAX_DEPTH = 32


class FilterError(ValueError):
    """The filter is malformed or uses something the account API does not support."""


@attrs.frozen
class Comparison:
    """`attribute operator value`; the attribute lower case, without a schema URN."""

    attribute: str
    operator: str
    value: FilterValue


@attrs.frozen
class Junction:
    """Operands joined by `and` or `or`."""

    operator: str
    operands: tuple[Node, ...]


Node = Comparison | Junction


@attrs.frozen
class _Token:
    kind: str  # "(", ")", "string", "word"
    text: str
    value: str
    position: int


def _tokens(text: str) -> Iterator[_Token]:
    index, length = 0, len(text)
    while index < length:
        char = text[index]
        if char.isspace():
            index += 1
        elif char in "()":
            yield _Token(char, char, char, index)
            index += 1
        elif char == '"':
            end = index + 1
            while end < length and text[end] != '"':
                end += 2 if text[end] == "\\" else 1
            if end >= length:
                raise FilterError(f"Unterminated string at position {index}.")
            raw = text[index : end + 1]
            try:
                value = json.loads(raw)
            except ValueError:
                raise FilterError(f"Invalid string literal at position {index}.") from None
            yield _Token("string", raw, value, index)
            index = end + 1
        else:
            end = index
            while end < length and not text[end].isspace() and text[end] not in '()"':
                end += 1
            word = text[index:end]
            yield _Token("word", word, word, index)
            index = end


class _Parser:
    def __init__(self, text: str) -> None:
        self._tokens = list(_tokens(text))
        self._index = 0

    def _peek(self) -> _Token | None:
        return self._tokens[self._index] if self._index < len(self._tokens) else None

    def _next(self, expected: str) -> _Token:
        token = self._peek()
        if token is None:
            raise FilterError(f"Unexpected end of filter: expected {expected}.")
        self._index += 1
        return token

    def _keyword(self, word: str) -> bool:
        token = self._peek()
        if token is not None and token.kind == "word" and token.text.lower() == word:
            self._index += 1
            return True
        return False

    def parse(self) -> Node:
        if not self._tokens:
            raise FilterError("The filter is empty.")
        node = self._disjunction(0)
        token = self._peek()
        if token is not None:
            raise FilterError(f"Unexpected {token.text!r} at position {token.position}.")
        return node

    def _disjunction(self, depth: int) -> Node:
        operands = [self._conjunction(depth)]
        while self._keyword("or"):
            operands.append(self._conjunction(depth))
        return operands[0] if len(operands) == 1 else Junction("or", tuple(operands))

    def _conjunction(self, depth: int) -> Node:
        operands = [self._factor(depth)]
        while self._keyword("and"):
            operands.append(self._factor(depth))
        return operands[0] if len(operands) == 1 else Junction("and", tuple(operands))

    def _factor(self, depth: int) -> Node:
        token = self._next("an attribute or '('")
        if token.kind == "(":
            if depth >= _MAX_DEPTH:
                raise FilterError(f"Parentheses are nested deeper than {_MAX_DEPTH}.")
            node = self._disjunction(depth + 1)
            closing = self._next("')'")
            if closing.kind != ")":
                raise FilterError(f"Expected ')' at position {closing.position}.")
            return node
        if token.kind != "word":
            raise FilterError(f"Expected an attribute at position {token.position}.")
        attribute = _attribute(token)
        operator_token = self._next("an operator")
        operator = operator_token.text.lower()
        if operator_token.kind != "word" or operator not in SUPPORTED_OPERATORS:
            if operator in _KNOWN_UNSUPPORTED:
                raise FilterError(f"The operator {operator!r} is not supported.")
            raise FilterError(f"Expected an operator at position {operator_token.position}.")
        return Comparison(attribute, operator, self._value())

    def _value(self) -> FilterValue:
        token = self._next("a value")
        if token.kind == "string":
            return token.value
        if token.kind == "word" and token.text.lower() in ("true", "false"):
            return token.text.lower() == "true"
        raise FilterError(f"Expected a quoted string, true or false at position {token.position}.")


def _attribute(token: _Token) -> str:
    name = token.text
    if name.lower() in _KNOWN_UNSUPPORTED:
        raise FilterError(f"The operator {name.lower()!r} is not supported.")
    if name.lower().startswith("urn:"):
        name = name.rsplit(":", 1)[1]
    if not _ATTRIBUTE.match(name):
        raise FilterError(f"Invalid attribute {token.text!r} at position {token.position}.")
    return name.lower()


def parse_filter(text: str) -> Node:
    """Parse a SCIM filter.

    Args:
        text: The filter, already form-decoded from the query string.

    Returns:
        The syntax tree.

    Raises:
        FilterError: The filter is malformed or unsupported.
    """
    return _Parser(text).parse()


def count_nodes(node: Node) -> int:
    """The number of nodes in a filter tree (comparisons and junctions)."""
    if isinstance(node, Comparison):
        return 1
    return 1 + sum(count_nodes(operand) for operand in node.operands)


def operators(node: Node) -> frozenset[str]:
    """The comparison operators a filter uses."""
    if isinstance(node, Comparison):
        return frozenset({node.operator})
    return frozenset().union(*(operators(operand) for operand in node.operands))


@attrs.frozen
class Attribute(Generic[R]):
    """How a filter reads one attribute of a resource.

    Attributes:
        read: Returns the attribute's value for a resource.
        case_exact: Whether string comparisons are case-sensitive (RFC 7643 `caseExact`).
    """

    read: Callable[[R], AttributeValue]
    case_exact: bool = False


def _matches(operator: str, actual: AttributeValue, expected: FilterValue, exact: bool) -> bool:
    if isinstance(actual, tuple):
        if operator == "ne":
            return not any(_matches("eq", item, expected, exact) for item in actual)
        return any(_matches(operator, item, expected, exact) for item in actual)
    if operator == "ne":
        return not _matches("eq", actual, expected, exact)
    if actual is None:
        return False
    if isinstance(actual, bool) or isinstance(expected, bool):
        return operator == "eq" and actual is expected
    if not exact:
        actual, expected = actual.casefold(), expected.casefold()
    if operator == "eq":
        return actual == expected
    if operator == "co":
        return expected in actual
    return actual.startswith(expected)


def compile_filter(node: Node, attributes: Mapping[str, Attribute[R]]) -> Callable[[R], bool]:
    """Turn a filter tree into a predicate over resources.

    Args:
        node: The parsed filter.
        attributes: The filterable attributes of the resource type, by lower-case name.

    Raises:
        FilterError: The filter names an attribute the resource type does not have, or
            compares a boolean with `co` or `sw`.
    """
    if isinstance(node, Junction):
        predicates = [compile_filter(operand, attributes) for operand in node.operands]
        if node.operator == "and":
            return lambda resource: all(predicate(resource) for predicate in predicates)
        return lambda resource: any(predicate(resource) for predicate in predicates)
    attribute = attributes.get(node.attribute)
    if attribute is None:
        raise FilterError(f"The attribute {node.attribute!r} cannot be filtered on.")
    if isinstance(node.value, bool) and node.operator in ("co", "sw"):
        raise FilterError(f"The operator {node.operator!r} needs a string value.")
    operator, expected, read, exact = (
        node.operator,
        node.value,
        attribute.read,
        attribute.case_exact,
    )
    return lambda resource: _matches(operator, read(resource), expected, exact)


def candidates(node: Node, lookup: Callable[[str, str], Collection[str] | None]) -> set[str] | None:
    """The ids that can match a filter, found through indexes; None if a scan is needed.

    The result is a superset of the matches: the caller still applies the predicate.

    Args:
        node: The parsed filter.
        lookup: Answers `eq` on an indexed attribute with the matching ids (possibly
            none), or None when the attribute has no index.
    """
    if isinstance(node, Comparison):
        if node.operator == "eq" and isinstance(node.value, str):
            found = lookup(node.attribute, node.value)
            return None if found is None else set(found)
        return None
    found_sets = [candidates(operand, lookup) for operand in node.operands]
    if node.operator == "and":
        known = [found for found in found_sets if found is not None]
        return min(known, key=len) if known else None
    if any(found is None for found in found_sets):
        return None
    return set().union(*(found for found in found_sets if found is not None))
