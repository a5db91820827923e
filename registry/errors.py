"""The one error type handlers raise: an HTTP status with Consul's plain-text reason."""

from __future__ import annotations


class ApiError(Exception):
    """Answered as ``status`` with ``text`` as a text/plain body, as Consul's ``HTTPError``."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


def bad_request(text: str) -> ApiError:
    """A 400 with Consul's reason text."""
    return ApiError(400, text)


def not_found(text: str) -> ApiError:
    """A 404 with Consul's reason text."""
    return ApiError(404, text)
