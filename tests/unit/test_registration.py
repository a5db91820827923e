"""Registration: an ACL refusal stops start-up at once and names the token variables."""

from __future__ import annotations

from typing import Any

import consul
import pytest

from discovery.errors import RegistrationError
from discovery.registration import Registrar
from discovery.settings import ServiceSettings


class Refusing:
    """A py-consul client whose agent answers every registration with 403."""

    def __init__(self) -> None:
        self.calls = 0
        self.agent = self
        self.service = self

    def register(self, **_: Any) -> bool:
        self.calls += 1
        raise consul.ACLPermissionDenied("Permission denied")


def test_an_acl_refusal_is_not_retried_and_names_the_token() -> None:
    client = Refusing()
    settings = ServiceSettings(name="catalog", port=8000, address="127.0.0.1", register_timeout=60)
    with pytest.raises(RegistrationError, match="CONSUL_HTTP_TOKEN") as raised:
        Registrar(settings, client).register()
    assert client.calls == 1
    assert "catalog" in str(raised.value)
