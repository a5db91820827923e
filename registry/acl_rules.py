"""ACL rules: the HCL subset the stack's policies use, and how Consul decides with them.

Supported are blocks of four kinds, each naming a service or node (or a prefix of names) and a
level, e.g. ``service "web" { policy = "write" }``, ``service_prefix ""``, ``node`` and
``node_prefix``; levels ``read``, ``write`` and ``deny`` (``isPolicyValid`` in acl/policy.go).
``#``, ``//`` and ``/* */`` comments are allowed. Any other rule kind or attribute is refused
with a ``RulesError`` naming it: real Consul accepts them, the registry cannot decide them.

How a decision is made, as in acl/policy_merger.go and acl/policy_authorizer.go:

- all policies of a token are merged first; for the same kind and name, ``deny`` beats
  ``write``, which beats ``read`` (``takesPrecedenceOver``);
- a rule for the exact name wins; otherwise the longest matching prefix rule
  (``getPolicy``); otherwise no rule applies and the agent's default policy decides;
- ``write`` grants read and write, ``read`` grants read only, ``deny`` grants nothing and stops
  the search (``enforce``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

LEVELS = ("read", "write", "deny")
#: Rule kind -> (resource it governs, whether its name is a prefix).
KINDS = {
    "service": ("service", False),
    "service_prefix": ("service", True),
    "node": ("node", False),
    "node_prefix": ("node", True),
}
_PRECEDENCE = {"deny": 3, "write": 2, "read": 1}
_TOKEN = re.compile(
    r"""\s+|\#[^\n]*|//[^\n]*|/\*.*?\*/   # blanks and comments
      |(?P<string>"(?:[^"\\\n]|\\.)*")
      |(?P<word>[A-Za-z_][A-Za-z0-9_-]*)
      |(?P<punct>[{}=])""",
    re.VERBOSE | re.DOTALL,
)


class RulesError(ValueError):
    """Rules the registry cannot parse or evaluate; the message names what and where."""


@dataclass(frozen=True)
class Rule:
    """One block: ``kind "name" { policy = "level" }``."""

    kind: str
    name: str
    level: str


def parse(text: str) -> tuple[Rule, ...]:
    """Parse rules text into rules, in the order written."""
    tokens = _tokens(text)
    rules: list[Rule] = []
    pos = 0
    while pos < len(tokens):
        kind = _expect(tokens, pos, "word", "a rule kind such as service_prefix")
        if kind not in KINDS:
            raise RulesError(
                f"unsupported rule kind {kind!r}: the registry evaluates only "
                f"{', '.join(KINDS)} rules"
            )
        name = _unquote(_expect(tokens, pos + 1, "string", f"a quoted name after {kind}"))
        _expect(tokens, pos + 2, "{", f'"{{" after {kind} {name!r}')
        pos, level = _block_body(tokens, pos + 3, f"{kind} {name!r}")
        rules.append(Rule(kind, name, level))
    return tuple(rules)


class RuleSet:
    """The merged rules of one token, answering whether a resource may be used."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self._exact: dict[tuple[str, str], str] = {}
        self._prefix: dict[tuple[str, str], str] = {}
        for rule in rules:
            resource, is_prefix = KINDS[rule.kind]
            table = self._prefix if is_prefix else self._exact
            key = (resource, rule.name)
            current = table.get(key)
            if current is None or _PRECEDENCE[rule.level] > _PRECEDENCE[current]:
                table[key] = rule.level

    def level(self, resource: str, name: str) -> str | None:
        """The level of the rule that governs ``name``, or None when no rule matches."""
        exact = self._exact.get((resource, name))
        if exact is not None:
            return exact
        best: tuple[int, str] | None = None
        for (kind, prefix), level in self._prefix.items():
            longer = best is None or len(prefix) > best[0]
            if kind == resource and name.startswith(prefix) and longer:
                best = (len(prefix), level)
        return best[1] if best else None

    def allows(self, resource: str, access: str, name: str) -> bool | None:
        """True or False when a rule decides ``access`` ("read"/"write"), None when none does."""
        level = self.level(resource, name)
        if level is None:
            return None
        return level == "write" or (level == "read" and access == "read")


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            line = text.count("\n", 0, pos) + 1
            raise RulesError(f"line {line}: unexpected {text[pos : pos + 10]!r}")
        pos = match.end()
        if match.lastgroup == "punct":
            tokens.append((match.group(), match.group()))
        elif match.lastgroup:
            tokens.append((match.lastgroup, match.group()))
    return tokens


def _expect(tokens: list[tuple[str, str]], pos: int, kind: str, what: str) -> str:
    if pos >= len(tokens):
        raise RulesError(f"expected {what}, got the end of the rules")
    if tokens[pos][0] != kind:
        raise RulesError(f"expected {what}, got {tokens[pos][1]!r}")
    return tokens[pos][1]


def _block_body(tokens: list[tuple[str, str]], pos: int, where: str) -> tuple[int, str]:
    level: str | None = None
    while pos < len(tokens) and tokens[pos][0] != "}":
        attribute = _expect(tokens, pos, "word", f"an attribute in {where}")
        if attribute != "policy":
            raise RulesError(
                f"unsupported attribute {attribute!r} in {where}: the registry reads only policy"
            )
        _expect(tokens, pos + 1, "=", f'"=" after {attribute}')
        level = _unquote(_expect(tokens, pos + 2, "string", f"a quoted level in {where}"))
        if level not in LEVELS:
            raise RulesError(f"invalid policy {level!r} in {where}: expected one of {LEVELS}")
        pos += 3
    _expect(tokens, pos, "}", f'"}}" closing {where}')
    if level is None:
        raise RulesError(f"{where} has no policy")
    return pos + 1, level


def _unquote(quoted: str) -> str:
    return re.sub(r"\\(.)", r"\1", quoted[1:-1])
