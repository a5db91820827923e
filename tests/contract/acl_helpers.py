"""Helpers for the ACL contract tests: tokens made from rules, removed after each test."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from .helpers import Api


@dataclass(frozen=True)
class IssuedToken:
    """A token the test made: its public AccessorID and its SecretID."""

    accessor_id: str
    secret_id: str


class AclAdmin:
    """Makes policies and tokens with the management token; ``close`` deletes them again."""

    def __init__(self, manager: Api) -> None:
        self.manager = manager
        self._policies: list[str] = []
        self._tokens: list[str] = []

    def policy(self, rules: str) -> str:
        """Create a policy with a unique name; return its name."""
        name = f"contract-{uuid.uuid4().hex[:10]}"
        response = self.manager.put("/v1/acl/policy", json={"Name": name, "Rules": rules})
        assert response.status_code == 200, response.text
        self._policies.append(response.json()["ID"])
        return name

    def token(self, *rules: str, secret_id: str | None = None) -> IssuedToken:
        """A token linked to one new policy per ``rules`` text, in that order."""
        body: dict[str, object] = {
            "Description": "contract test",
            "Policies": [{"Name": self.policy(r)} for r in rules],
        }
        if secret_id:
            body["SecretID"] = secret_id
        response = self.manager.put("/v1/acl/token", json=body)
        assert response.status_code == 200, response.text
        token = response.json()
        self._tokens.append(token["AccessorID"])
        return IssuedToken(token["AccessorID"], token["SecretID"])

    def forget_token(self, accessor_id: str) -> None:
        """Track a token made outside ``token`` so that ``close`` deletes it too."""
        self._tokens.append(accessor_id)

    def close(self) -> None:
        """Delete every token, then every policy, this admin made."""
        for accessor_id in self._tokens:
            self.manager.session.delete(f"{self.manager.addr}/v1/acl/token/{accessor_id}")
        for policy_id in self._policies:
            self.manager.session.delete(f"{self.manager.addr}/v1/acl/policy/{policy_id}")


def denied(accessor_id: str, permission: str, name: str = "") -> str:
    """Consul's 403 text for a token that lacks ``permission`` ("service:write")."""
    text = (
        f"Permission denied: token with AccessorID '{accessor_id}' lacks permission '{permission}'"
    )
    return f'{text} on "{name}"' if name else text
