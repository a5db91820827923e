"""ACL mode: one management token, everything else denied by default, as Consul decides it.

Started with ``--acl-token``, the double behaves like an agent with
``acl { enabled = true, default_policy = "deny", tokens { initial_management = TOKEN } }``:

- the management token may do everything;
- a request without a token uses the anonymous token, which may do nothing: writes and reads of
  a single object answer 403 with Consul's ``PermissionDeniedError`` text, while list endpoints
  answer 200 with the denied entries filtered out (an empty list), as Consul does;
- any other token does not resolve: 403 "ACL not found", for reads and writes alike.

Tokens are read like ``parseToken`` in agent/http.go: the ``token`` query parameter, then the
``X-Consul-Token`` header, then ``Authorization: Bearer``. Texts: acl/errors.go.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .errors import ApiError

ANONYMOUS_HINT = "The anonymous token is used implicitly when a request does not specify a token."


@dataclass(frozen=True)
class Authorizer:
    """What one request may do: everything (ACLs off, or management) or nothing (anonymous)."""

    allow_all: bool

    def allowed(self, resource: str, level: str, name: str) -> bool:
        """True when ``resource:level`` on ``name`` is allowed ("service", "write", "web")."""
        return self.allow_all

    def require(self, resource: str, level: str, name: str) -> None:
        """Raise Consul's 403 unless ``resource:level`` on ``name`` is allowed."""
        if not self.allowed(resource, level, name):
            raise ApiError(
                403,
                f"Permission denied: anonymous token lacks permission '{resource}:{level}' "
                f'on "{name}". {ANONYMOUS_HINT}',
            )


ALLOW_ALL = Authorizer(allow_all=True)
ANONYMOUS = Authorizer(allow_all=False)


def request_token(query: Mapping[str, list[str]], headers: Mapping[str, str]) -> str:
    """The token a request carries, looked up in Consul's order; header names lower-case."""
    for value in query.get("token", []):
        if value:
            return value
    if header := headers.get("x-consul-token", ""):
        return header
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        return credentials.strip()
    return ""


def resolve(management_token: str | None, token: str) -> Authorizer:
    """Resolve a request token; raise 403 "ACL not found" for a token that does not exist."""
    if management_token is None:
        return ALLOW_ALL
    if not token:
        return ANONYMOUS
    if token == management_token:
        return ALLOW_ALL
    raise ApiError(403, "ACL not found")
