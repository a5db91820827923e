"""What one request may do, decided as a Consul agent with ``default_policy = "deny"`` decides.

ACLs are off unless the registry starts with ``--acl`` (see ``acl_state``). With them on:

- a request without a token uses the anonymous token, which has no rules, so it may do nothing:
  writes and reads of a single object answer 403 with Consul's ``PermissionDeniedError`` text,
  while list endpoints answer 200 with the denied entries filtered out, as Consul does;
- a management token (linked to the builtin global-management policy) may do everything;
- any other token may do what its policies' rules allow (``acl_rules``), nothing else: agent
  and ACL permissions come only with management;
- a token that does not exist answers 403 "ACL not found", for reads and writes alike.

Tokens are read like ``parseToken`` in agent/http.go: the ``token`` query parameter, then the
``X-Consul-Token`` header, then ``Authorization: Bearer``. Error texts: acl/errors.go.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .acl_rules import RuleSet
from .errors import ApiError

#: The anonymous token's AccessorID (acl.AnonymousTokenID) and SecretID.
ANONYMOUS_ACCESSOR_ID = "00000000-0000-0000-0000-000000000002"
ANONYMOUS_SECRET = "anonymous"
ANONYMOUS_HINT = "The anonymous token is used implicitly when a request does not specify a token."
#: Resources whose permission comes from service, service_prefix, node and node_prefix rules.
RULE_RESOURCES = ("service", "node")


@dataclass(frozen=True)
class Authorizer:
    """The permissions of one resolved token."""

    accessor_id: str
    management: bool = False
    rules: RuleSet | None = None

    def allowed(self, resource: str, level: str, name: str = "") -> bool:
        """True when ``resource:level`` on ``name`` is allowed ("service", "write", "web")."""
        if self.management:
            return True
        if self.rules is None or resource not in RULE_RESOURCES:
            return False
        return bool(self.rules.allows(resource, level, name))

    def require(self, resource: str, level: str, name: str = "") -> None:
        """Raise Consul's 403 unless ``resource:level`` on ``name`` is allowed."""
        if not self.allowed(resource, level, name):
            raise permission_denied(self.accessor_id, resource, level, name)


#: ACLs disabled: every request may do everything.
ALLOW_ALL = Authorizer(accessor_id="", management=True)
ANONYMOUS = Authorizer(accessor_id=ANONYMOUS_ACCESSOR_ID)


def permission_denied(accessor_id: str, resource: str, level: str, name: str = "") -> ApiError:
    """Consul's 403 text for a denied permission (``PermissionDeniedError.Error``)."""
    anonymous = accessor_id == ANONYMOUS_ACCESSOR_ID
    who = "anonymous token" if anonymous else f"token with AccessorID '{accessor_id}'"
    text = f"Permission denied: {who} lacks permission '{resource}:{level}'"
    if name:
        text += f' on "{name}"'
    if anonymous:
        text += f". {ANONYMOUS_HINT}"
    return ApiError(403, text)


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
