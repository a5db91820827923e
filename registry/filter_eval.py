"""Check a parsed filter against an endpoint's fields, then run it on JSON entries.

bexpr v0.1.2 derives each endpoint's fields from Go types by reflection; here they are declared
(``filter_fields``) with the same four shapes, which decide the operators a selector allows:

- a string leaf: ``==``, ``!=``, ``in``/``contains`` (substring), ``matches`` and negations;
- an int or bool leaf: ``==`` and ``!=``, the value converted as Go's ``strconv`` does;
- a list of strings: ``in``, ``not in``, ``is empty``, ``is not empty``;
- a list of objects: ``is empty``, ``is not empty``, and its fields, true when any item matches;
- a map with string keys: ``is empty``, ``is not empty``, ``in`` (has the key), and any key as
  a field; a missing key makes ``==``, ``in`` and ``is not empty`` false and the others true.

Validation errors reuse bexpr's texts: ``Selector "X" is not valid``, ``Invalid match operator
"Equal" for selector "Tags"``, ``Failed to coerce value ...``. Regular expressions are RE2, as
Go's are (``filter_regex``). Filters are capped in nesting depth (``MAX_FILTER_DEPTH``): parsing,
building and evaluating them recurse, and no useful filter nests that deep.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .filter_parse import And, Expr, FilterError, Match, Not, Op, Or, parse
from .filter_regex import Search, compile_pattern

Json = Any


@dataclass(frozen=True)
class Leaf:
    """A string, int or bool field."""

    kind: str


@dataclass(frozen=True)
class ListOf:
    """A JSON array of leaves or of objects."""

    item: Leaf | Struct


@dataclass(frozen=True)
class MapOf:
    """A JSON object with arbitrary string keys (``Meta``, ``TaggedAddresses``)."""

    value: Leaf | Struct


@dataclass(frozen=True)
class Struct:
    """A JSON object with known field names."""

    fields: Mapping[str, Schema]


Schema = Leaf | ListOf | MapOf | Struct
STRING, INT, BOOL = Leaf("string"), Leaf("int"), Leaf("bool")

_STRING_OPS = (Op.EQUAL, Op.NOT_EQUAL, Op.IN, Op.NOT_IN, Op.MATCHES, Op.NOT_MATCHES)
_EMPTINESS = (Op.IS_EMPTY, Op.IS_NOT_EMPTY)
_NEGATED = {Op.NOT_EQUAL: Op.EQUAL, Op.NOT_IN: Op.IN, Op.IS_NOT_EMPTY: Op.IS_EMPTY}
_NEGATED[Op.NOT_MATCHES] = Op.MATCHES
_ZERO: dict[str, object] = {"string": "", "int": 0, "bool": False}


@dataclass(frozen=True)
class _Test:
    """One validated match: where to look, how to compare, with the value converted."""

    match: Match
    value: object
    pattern: Search | None


Predicate = Callable[[Json], bool]


#: Deepest filter accepted: each ``not``, ``and``, ``or`` and parenthesis is one level.
MAX_FILTER_DEPTH = 64


def compile_filter(text: str, schema: Struct) -> Predicate:
    """Parse and validate ``text`` for entries shaped as ``schema``; raise ``FilterError``."""
    expr = parse(text)
    if (depth := _depth(expr)) > MAX_FILTER_DEPTH:
        raise FilterError(
            f"the filter nests {depth} levels deep; the registry accepts at most {MAX_FILTER_DEPTH}"
        )
    return _build(expr, schema)


def _depth(expr: Expr) -> int:
    # Iterative, as the point is to refuse trees too deep for recursion.
    deepest, stack = 0, [(expr, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(node, Not):
            stack.append((node.operand, depth + 1))
        elif isinstance(node, And | Or):
            stack += [(node.left, depth + 1), (node.right, depth + 1)]
    return deepest


def _build(expr: Expr, schema: Struct) -> Predicate:
    if isinstance(expr, Not):
        inner = _build(expr.operand, schema)
        return lambda entry: not inner(entry)
    if isinstance(expr, And | Or):
        left, right = _build(expr.left, schema), _build(expr.right, schema)
        if isinstance(expr, And):
            return lambda entry: left(entry) and right(entry)
        return lambda entry: left(entry) or right(entry)
    test = _validate(expr, schema)
    return lambda entry: _evaluate(test, 0, entry, schema)


def _validate(match: Match, root: Struct) -> _Test:
    node: Schema = root
    for depth, name in enumerate(match.selector):
        children = _children(node)
        child = children.get(name) if children is not None else None
        if child is None and isinstance(node, MapOf):
            child = node.value
        if child is None:
            raise FilterError(f'Selector "{_dotted(match.selector[: depth + 1])}" is not valid')
        node = child
    if match.op not in _operators(node):
        raise FilterError(
            f'Invalid match operator "{match.op.value}" for selector "{_dotted(match.selector)}"'
        )
    if match.value is None:
        return _Test(match, None, None)
    leaf = node.item if isinstance(node, ListOf) else node
    value: object = match.value
    if isinstance(leaf, Leaf):
        value = _coerce(match, leaf)
    pattern = None
    if match.op in (Op.MATCHES, Op.NOT_MATCHES):
        pattern = compile_pattern(match.value)
    return _Test(match, value, pattern)


def _children(node: Schema) -> Mapping[str, Schema] | None:
    if isinstance(node, Struct):
        return node.fields
    if isinstance(node, ListOf) and isinstance(node.item, Struct):
        return node.item.fields
    if isinstance(node, MapOf):
        return {}
    return None


def _operators(node: Schema) -> tuple[Op, ...]:
    if isinstance(node, Leaf):
        return _STRING_OPS if node.kind == "string" else (Op.EQUAL, Op.NOT_EQUAL)
    if isinstance(node, ListOf):
        return (Op.IN, Op.NOT_IN, *_EMPTINESS) if isinstance(node.item, Leaf) else _EMPTINESS
    if isinstance(node, MapOf):
        return (*_EMPTINESS, Op.IN, Op.NOT_IN)
    return ()


def _coerce(match: Match, leaf: Leaf) -> object:
    raw = match.value or ""
    where = f'Failed to coerce value "{raw}" for selector "{_dotted(match.selector)}"'
    if leaf.kind == "int":
        try:
            octal = re.fullmatch(r"[+-]?0[0-7]+", raw)
            return int(raw, 8) if octal else int(raw, 0)
        except ValueError:
            raise FilterError(
                f'{where}: strconv.ParseInt: parsing "{raw}": invalid syntax'
            ) from None
    if leaf.kind == "bool":
        if raw in ("1", "t", "T", "TRUE", "true", "True"):
            return True
        if raw in ("0", "f", "F", "FALSE", "false", "False"):
            return False
        raise FilterError(f'{where}: strconv.ParseBool: parsing "{raw}": invalid syntax')
    return raw


def _evaluate(test: _Test, depth: int, value: Json, node: Schema) -> bool:
    path = test.match.selector
    if depth == len(path):
        return _apply(test, value, node)
    if isinstance(node, ListOf):
        # Selecting into a list asks about any of its items (bexpr: "implicitly ANY").
        items = value if isinstance(value, list) else []
        return any(_evaluate(test, depth, item, node.item) for item in items)
    mapping = value if isinstance(value, dict) else {}
    if isinstance(node, MapOf):
        if path[depth] not in mapping:
            return test.match.op not in (Op.EQUAL, Op.IS_NOT_EMPTY, Op.IN)
        return _evaluate(test, depth + 1, mapping[path[depth]], node.value)
    assert isinstance(node, Struct)
    child = node.fields[path[depth]]
    # A Go struct always has every field: one the JSON omits is its zero value.
    found = mapping.get(path[depth])
    if found is None:
        found = _ZERO.get(child.kind, "") if isinstance(child, Leaf) else None
    return _evaluate(test, depth + 1, found, child)


def _apply(test: _Test, value: Json, node: Schema) -> bool:
    op = test.match.op
    positive = _NEGATED.get(op, op)
    result = _positive(positive, test, value, node)
    return not result if positive is not op else result


def _positive(op: Op, test: _Test, value: Json, node: Schema) -> bool:
    if op is Op.IS_EMPTY:
        return not value
    if op is Op.MATCHES:
        assert test.pattern is not None
        return test.pattern(str(value))
    if op is Op.IN:
        if isinstance(node, Leaf):
            return str(test.value) in str(value)
        return test.value in (value or ())
    if isinstance(node, Leaf) and value is None:
        value = _ZERO[node.kind]
    return bool(value == test.value and type(value) is type(test.value))


def _dotted(parts: tuple[str, ...]) -> str:
    return ".".join(parts)
