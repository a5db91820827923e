"""ACL state: the one-time bootstrap, policies and tokens, in memory like a dev agent's.

``--acl`` enables ACLs without a management token: ``PUT /v1/acl/bootstrap`` makes the first one,
once; after that it answers 403 "Permission denied: ACL bootstrap no longer allowed (reset index:
N)" (``BootstrapTokens`` in agent/consul/acl_endpoint.go). ``--acl-token`` also creates the
management token with that secret at start, like ``acl.tokens.initial_management``, which closes
bootstrapping too. A restart loses every token, as ``consul agent -dev`` does.

Writes take the next raft index from the catalog store, so ``CreateIndex``/``ModifyIndex`` grow
with everything else, without waking catalog watchers. Validation and texts of token writes
follow agent/consul/auth/token_writer.go; rules are those ``acl_rules`` evaluates.
"""

from __future__ import annotations

import base64
import hashlib
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .acl import ANONYMOUS, ANONYMOUS_ACCESSOR_ID, ANONYMOUS_SECRET, Authorizer
from .acl_rules import Rule, RulesError, RuleSet, parse
from .errors import ApiError

GLOBAL_MANAGEMENT_ID = "00000000-0000-0000-0000-000000000001"
GLOBAL_MANAGEMENT_NAME = "global-management"
RESERVED_PREFIX = "00000000-0000-0000-0000-0000000000"
NOT_FOUND = "ACL not found"
NOT_BOOTSTRAPPED = (
    "ACL system must be bootstrapped before making any requests that require authorization: "
    + NOT_FOUND
)
_POLICY_NAME = re.compile(r"^[A-Za-z0-9\-_]{1,128}$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


@dataclass
class Policy:
    """An ACL policy; ``rules`` is ``rules_text`` parsed (empty for global-management)."""

    policy_id: str
    name: str
    description: str
    rules_text: str
    rules: tuple[Rule, ...]
    create_index: int
    modify_index: int


@dataclass
class Token:
    """An ACL token and the IDs of the policies it links."""

    accessor_id: str
    secret_id: str
    description: str
    policy_ids: list[str]
    create_index: int
    modify_index: int
    local: bool = False
    create_time: str = field(default_factory=lambda: _now())


class AclState:
    """Policies and tokens; every method is safe to call from any thread."""

    def __init__(self, next_index: Callable[[], int], initial_management: str | None) -> None:
        self._next_index = next_index
        self.lock = threading.RLock()
        self.reset_index = 0  # the index of the bootstrap; 0 while bootstrapping is allowed
        self.agent_tokens: dict[str, str] = {}
        idx = next_index()
        builtin = Policy(
            GLOBAL_MANAGEMENT_ID,
            GLOBAL_MANAGEMENT_NAME,
            "Builtin Policy that grants unlimited access",
            "",
            (),
            idx,
            idx,
        )
        self._policies = {GLOBAL_MANAGEMENT_ID: builtin}
        anonymous = Token(ANONYMOUS_ACCESSOR_ID, ANONYMOUS_SECRET, "Anonymous Token", [], idx, idx)
        self._tokens = {ANONYMOUS_ACCESSOR_ID: anonymous}
        if initial_management:
            self._bootstrap("Initial Management Token", initial_management)

    # Resolution

    def resolve(self, secret: str) -> Authorizer:
        """The permissions of ``secret``; 403 "ACL not found" for a token that does not exist."""
        if secret in ("", ANONYMOUS_SECRET):
            return ANONYMOUS
        with self.lock:
            token = self.token_by_secret(secret)
            if token is None:
                raise ApiError(403, NOT_FOUND if self.reset_index else NOT_BOOTSTRAPPED)
            policies = [self._policies[p] for p in token.policy_ids if p in self._policies]
        if any(p.policy_id == GLOBAL_MANAGEMENT_ID for p in policies):
            return Authorizer(token.accessor_id, management=True)
        return Authorizer(token.accessor_id, rules=RuleSet(r for p in policies for r in p.rules))

    def bootstrap(self) -> Token:
        """``PUT /v1/acl/bootstrap``: the first management token, once."""
        with self.lock:
            if self.reset_index:
                raise ApiError(
                    403,
                    "Permission denied: ACL bootstrap no longer allowed "
                    f"(reset index: {self.reset_index})",
                )
            return self._bootstrap("Bootstrap Token (Global Management)", str(uuid.uuid4()))

    # Policies

    def policies(self) -> list[Policy]:
        """Every policy, ordered by ID."""
        with self.lock:
            return sorted(self._policies.values(), key=lambda p: p.policy_id)

    def policy(self, policy_id: str = "", name: str = "") -> Policy | None:
        """A policy by ID or by name."""
        with self.lock:
            if policy_id:
                return self._policies.get(policy_id)
            return next((p for p in self._policies.values() if p.name == name), None)

    def put_policy(self, policy_id: str, name: str, description: str, rules_text: str) -> Policy:
        """Create (``policy_id`` empty) or update a policy."""
        if not name:
            raise ApiError(500, "Invalid Policy: no Name is set")
        if not _POLICY_NAME.match(name):
            raise ApiError(
                500,
                "Invalid Policy: invalid Name. Only alphanumeric characters, '-' and '_' are allowed",
            )
        try:
            rules = parse(rules_text)
        except RulesError as err:
            raise ApiError(400, f"registry: {err}") from None
        with self.lock:
            same_name = self.policy(name=name)
            if same_name is not None and same_name.policy_id != policy_id:
                raise ApiError(500, f'Invalid Policy: A Policy with Name "{name}" already exists')
            if policy_id == GLOBAL_MANAGEMENT_ID:
                raise ApiError(
                    500,
                    "Changing the Rules for the builtin global-management policy is not permitted",
                )
            idx = self._next_index()
            if not policy_id:
                policy_id = str(uuid.uuid4())
                created = idx
            elif (old := self._policies.get(policy_id)) is not None:
                created = old.create_index
            else:
                raise ApiError(500, f"Cannot find policy {policy_id}")
            policy = Policy(policy_id, name, description, rules_text, rules, created, idx)
            self._policies[policy_id] = policy
            return policy

    def delete_policy(self, policy_id: str) -> None:
        """``DELETE /v1/acl/policy/:id``; tokens keep a dangling link, which grants nothing."""
        with self.lock:
            if policy_id == GLOBAL_MANAGEMENT_ID:
                raise ApiError(
                    500, "Delete operation not permitted on the builtin global-management policy"
                )
            if self._policies.pop(policy_id, None) is None:
                raise ApiError(404, "Cannot find policy to delete")
            self._next_index()

    # Tokens

    def tokens(self) -> list[Token]:
        """Every token, ordered by AccessorID."""
        with self.lock:
            return sorted(self._tokens.values(), key=lambda t: t.accessor_id)

    def token(self, accessor_id: str) -> Token | None:
        """A token by AccessorID."""
        with self.lock:
            return self._tokens.get(accessor_id)

    def token_by_secret(self, secret: str) -> Token | None:
        """A token by SecretID."""
        with self.lock:
            return next((t for t in self._tokens.values() if t.secret_id == secret), None)

    def create_token(
        self, accessor_id: str, secret_id: str, description: str, links: list[dict[str, str]]
    ) -> Token:
        """``PUT /v1/acl/token``; IDs not given are generated."""
        with self.lock:
            accessor_id = self._new_id(accessor_id, "AccessorID")
            secret_id = self._new_id(secret_id, "SecretID")
            policy_ids = self._policy_ids(links)
            idx = self._next_index()
            token = Token(accessor_id, secret_id, description, policy_ids, idx, idx)
            self._tokens[accessor_id] = token
            return token

    def update_token(
        self, accessor_id: str, secret_id: str, description: str, links: list[dict[str, str]]
    ) -> Token:
        """``PUT /v1/acl/token/:AccessorID``: new description and policies, same secret."""
        if not _UUID.match(accessor_id):
            raise ApiError(500, "AccessorID is not a valid UUID")
        with self.lock:
            old = self._tokens.get(accessor_id)
            if old is None:
                raise ApiError(500, f'Cannot find token "{accessor_id}"')
            if secret_id and secret_id != old.secret_id:
                raise ApiError(500, "Changing a token's SecretID is not permitted")
            old.policy_ids = self._policy_ids(links)
            old.description = description
            old.modify_index = self._next_index()
            return old

    def delete_token(self, accessor_id: str) -> None:
        """``DELETE /v1/acl/token/:AccessorID``."""
        if not _UUID.match(accessor_id):
            raise ApiError(500, "Accessor ID is missing or an invalid UUID")
        if accessor_id == ANONYMOUS_ACCESSOR_ID:
            raise ApiError(500, "Delete operation not permitted on the anonymous token")
        with self.lock:
            if self._tokens.pop(accessor_id, None) is None:
                raise ApiError(404, "Cannot find token to delete")
            self._next_index()

    def _bootstrap(self, description: str, secret: str) -> Token:
        idx = self._next_index()
        token = Token(str(uuid.uuid4()), secret, description, [GLOBAL_MANAGEMENT_ID], idx, idx)
        self._tokens[token.accessor_id] = token
        self.reset_index = idx
        return token

    def _new_id(self, given: str, what: str) -> str:
        if not given:
            return str(uuid.uuid4())
        if given.startswith(RESERVED_PREFIX):
            raise ApiError(
                500,
                f'Invalid Token: {what} - UUIDs with the prefix "{RESERVED_PREFIX}" are reserved',
            )
        if not _UUID.match(given):
            raise ApiError(500, f"Invalid Token: {what} - not a valid UUID")
        if any(given in (t.accessor_id, t.secret_id) for t in self._tokens.values()):
            raise ApiError(500, f"Invalid Token: {what} is already in use")
        return given

    def _policy_ids(self, links: list[dict[str, str]]) -> list[str]:
        ids: list[str] = []
        for link in links:
            if link.get("id"):
                policy = self._policies.get(link["id"])
                missing = f'No such ACL policy with ID "{link["id"]}"'
            else:
                policy = self.policy(name=link.get("name", ""))
                missing = f'No such ACL policy with name "{link.get("name", "")}"'
            if policy is None:
                raise ApiError(500, missing)
            if policy.policy_id not in ids:
                ids.append(policy.policy_id)
        return ids


def content_hash(*parts: object) -> str:
    """An opaque hash of a record's fields, base64 as Consul's ``Hash``."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=32).digest()
    return base64.b64encode(digest).decode()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
