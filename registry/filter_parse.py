"""Parse Consul's ``?filter=`` expressions (go-bexpr v0.1.2, the version Consul 1.16 pins).

The grammar is bexpr's ``grammar.peg`` written for lark: matching expressions joined by
``and``, ``or`` and ``not`` with parentheses; selectors such as ``Service.Tags`` or
``Meta["some key"]``; values that are numbers, double-quoted or backquoted strings, or bare
selectors (taken as their text, so ``Node == web1`` compares with "web1"). Operators::

    <Selector> == <Value>          <Selector> != <Value>
    <Selector> is empty            <Selector> is not empty
    <Value> in <Selector>          <Value> not in <Selector>
    <Selector> contains <Value>    <Selector> not contains <Value>
    <Selector> matches <Value>     <Selector> not matches <Value>

Differences from bexpr's parser: whitespace around ``in`` and friends is optional here (bexpr
wants at least one space), and error messages name lark's position and expected tokens rather
than pigeon's.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedInput, VisitError


class FilterError(Exception):
    """A filter that does not parse or does not fit the endpoint's fields."""


class Op(enum.Enum):
    """bexpr's match operators, valued by their ``String()`` names used in error texts."""

    EQUAL = "Equal"
    NOT_EQUAL = "Not Equal"
    IN = "In"
    NOT_IN = "Not In"
    IS_EMPTY = "Is Empty"
    IS_NOT_EMPTY = "Is Not Empty"
    MATCHES = "Matches"
    NOT_MATCHES = "Not Matches"


@dataclass(frozen=True)
class Match:
    """``selector op value``; ``value`` is the raw text (None for the emptiness tests)."""

    selector: tuple[str, ...]
    op: Op
    value: str | None


@dataclass(frozen=True)
class Not:
    """Logical not."""

    operand: Expr


@dataclass(frozen=True)
class And:
    """Logical and (short-circuit)."""

    left: Expr
    right: Expr


@dataclass(frozen=True)
class Or:
    """Logical or (short-circuit)."""

    left: Expr
    right: Expr


Expr = Match | Not | And | Or

_GRAMMAR = r"""
?start: or_expr
?or_expr: and_expr ("or" and_expr)*
?and_expr: not_expr ("and" not_expr)*
?not_expr: "not" not_expr -> not_
         | "(" or_expr ")"
         | match
match: SELECTOR "==" value                -> equal
     | SELECTOR "!=" value                -> not_equal
     | SELECTOR "contains" value          -> contains
     | SELECTOR "not" "contains" value    -> not_contains
     | SELECTOR "matches" value           -> matches
     | SELECTOR "not" "matches" value     -> not_matches
     | SELECTOR "is" "empty"              -> is_empty
     | SELECTOR "is" "not" "empty"        -> is_not_empty
     | SELECTOR "in" SELECTOR             -> selector_in
     | SELECTOR "not" "in" SELECTOR       -> selector_not_in
     | literal "in" SELECTOR              -> literal_in
     | literal "not" "in" SELECTOR        -> literal_not_in
?value: SELECTOR -> selector_value
      | literal
literal: NUMBER | STRING
SELECTOR: /[a-zA-Z][a-zA-Z0-9_]*(?:\.[a-zA-Z][a-zA-Z0-9_]*|\[[ \t\r\n]*(?:"[^"]*"|`[^`]*`)[ \t\r\n]*\])*/
NUMBER: /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?/
STRING: /"[^"]*"|`[^`]*`/
%ignore /[ \t\r\n]+/
"""

# LALR with lark's contextual lexer: keywords ("and", "in", ...) that the SELECTOR pattern also
# matches are told apart by lark itself, so "index" stays a selector while "in" is a keyword.
_PARSER = Lark(_GRAMMAR, parser="lalr", maybe_placeholders=False)

_PART = re.compile(r'\.?([a-zA-Z][a-zA-Z0-9_]*)|\[\s*("[^"]*"|`[^`]*`)\s*\]')
_ESCAPE = re.compile(
    r'\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{3}|[abfnrtv\\\'"]|.?)'
)
_TOO_DEEP = "the filter nests too deeply"
_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


def parse(text: str) -> Expr:
    """Parse a filter expression, or raise ``FilterError`` saying where it went wrong."""
    try:
        tree = _PARSER.parse(text)
        expr: Expr = _ToAst().transform(tree)
    except RecursionError as err:  # lark's transformer recurses once per nested "not"
        raise FilterError(_TOO_DEEP) from err
    except VisitError as err:  # a bad string literal, raised inside the transformer
        if isinstance(err.orig_exc, RecursionError):
            raise FilterError(_TOO_DEEP) from err
        raise FilterError(str(err.orig_exc)) from err
    except UnexpectedInput as err:
        raise FilterError(_position_text(text, err)) from err
    except LarkError as err:
        raise FilterError(str(err)) from err
    return expr


def unquote(literal: str) -> str:
    """Go's ``strconv.Unquote`` for the two string forms bexpr accepts."""
    body = literal[1:-1]
    if literal.startswith("`"):
        return body
    if "\n" in body:
        raise FilterError(f"invalid syntax in string literal {literal}")

    def replace(found: re.Match[str]) -> str:
        code = found.group(1)
        if code in _SIMPLE_ESCAPES:
            return _SIMPLE_ESCAPES[code]
        if code in ("\\", '"'):
            return code
        if code[:1] in ("x", "u", "U"):
            return chr(int(code[1:], 16))
        if len(code) == 3 and code.isdigit():
            return chr(int(code, 8))
        raise FilterError(f"invalid syntax in string literal {literal}")

    return _ESCAPE.sub(replace, body)


def selector_parts(text: str) -> tuple[str, ...]:
    """Split ``Service.Meta["a b"]`` into ("Service", "Meta", "a b")."""
    parts = []
    for found in _PART.finditer(text):
        name, index = found.groups()
        parts.append(name if name is not None else unquote(index))
    return tuple(parts)


def _position_text(text: str, err: UnexpectedInput) -> str:
    column = getattr(err, "column", 0) or 0
    line = getattr(err, "line", 1) or 1
    offset = err.pos_in_stream or 0
    where = f"{line}:{column} ({offset})"
    if isinstance(err, UnexpectedCharacters):
        return f"{where}: unexpected character {text[offset : offset + 1]!r}"
    token = getattr(err, "token", None)
    names = getattr(err, "expected", None) or getattr(err, "accepts", None) or ()
    expected = sorted(_describe(name) for name in names)
    found = "end of input" if token is None or token.type == "$END" else repr(str(token))
    return f"{where}: unexpected {found}, expected one of: {', '.join(expected)}"


def _describe(terminal: str) -> str:
    # Keywords and punctuation read as themselves ("==", "in"); patterns by their name.
    pattern = _PARSER.get_terminal(terminal).pattern
    return f'"{pattern.value}"' if pattern.type == "str" else terminal.lower()


@v_args(inline=True)
class _ToAst(Transformer[Token, Expr]):
    """Builds the AST from lark's parse tree."""

    def or_expr(self, *items: Expr) -> Expr:
        result = items[0]
        for item in items[1:]:
            result = Or(result, item)
        return result

    def and_expr(self, *items: Expr) -> Expr:
        result = items[0]
        for item in items[1:]:
            result = And(result, item)
        return result

    def not_(self, operand: Expr) -> Expr:
        # bexpr folds "not not x" into x; the result is the same either way.
        return operand.operand if isinstance(operand, Not) else Not(operand)

    def selector_value(self, token: Token) -> str:
        return ".".join(selector_parts(str(token)))

    def literal(self, token: Token) -> str:
        return unquote(str(token)) if token.type == "STRING" else str(token)

    def equal(self, sel: Token, value: str) -> Match:
        return Match(selector_parts(str(sel)), Op.EQUAL, value)

    def not_equal(self, sel: Token, value: str) -> Match:
        return Match(selector_parts(str(sel)), Op.NOT_EQUAL, value)

    def contains(self, sel: Token, value: str) -> Match:
        return Match(selector_parts(str(sel)), Op.IN, value)

    def not_contains(self, sel: Token, value: str) -> Match:
        return Match(selector_parts(str(sel)), Op.NOT_IN, value)

    def matches(self, sel: Token, value: str) -> Match:
        return Match(selector_parts(str(sel)), Op.MATCHES, value)

    def not_matches(self, sel: Token, value: str) -> Match:
        return Match(selector_parts(str(sel)), Op.NOT_MATCHES, value)

    def is_empty(self, sel: Token) -> Match:
        return Match(selector_parts(str(sel)), Op.IS_EMPTY, None)

    def is_not_empty(self, sel: Token) -> Match:
        return Match(selector_parts(str(sel)), Op.IS_NOT_EMPTY, None)

    def selector_in(self, value: Token, sel: Token) -> Match:
        return Match(selector_parts(str(sel)), Op.IN, self.selector_value(value))

    def selector_not_in(self, value: Token, sel: Token) -> Match:
        return Match(selector_parts(str(sel)), Op.NOT_IN, self.selector_value(value))

    def literal_in(self, value: str, sel: Token) -> Match:
        return Match(selector_parts(str(sel)), Op.IN, value)

    def literal_not_in(self, value: str, sel: Token) -> Match:
        return Match(selector_parts(str(sel)), Op.NOT_IN, value)
