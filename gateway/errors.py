"""Every exception of the gateway's core, in one place, sorted by who is to blame.

- :class:`Refusal`: an answer the gateway gives itself (404 no such route, 503 nothing
  passing, 429 over a rate). :class:`ClientError` is a refusal that is the client's fault (a
  malformed request, a body over the limit, a body cut short).
- :class:`ClientGone`: the client closed its connection (nginx logs it 499).
- :class:`UpstreamError` and its kinds: an attempt failed at the instance, which counts against
  it (ejection, the retry rules).
- :class:`LocalResourceError`: the gateway itself ran out of descriptors, buffers or ports;
  nobody else's fault, never counted against an instance.

Catching them apart is what keeps a slow or broken client from ever being blamed on an
instance, and the gateway's own shortages from being blamed on either.
"""

from __future__ import annotations

from typing import Any


class Refusal(Exception):
    """An answer the gateway makes itself: *status*, a stable *code* and a *detail* sentence.

    *headers* are extra header lines (``b"Retry-After: 1"``); *extra* become more keys of the
    JSON body (``service``, ``attempts``).
    """

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        headers: tuple[bytes, ...] = (),
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail
        self.headers, self.extra = headers, extra


class ClientError(Refusal):
    """A request the gateway refuses for the client's own fault.

    *aborted* marks a client that gave up mid-request (a body cut short or stalled), which is
    counted as a client abort.
    """

    def __init__(self, status: int, code: str, detail: str, aborted: bool = False) -> None:
        super().__init__(status, code, detail)
        self.aborted = aborted


class ClientGone(Exception):
    """The client closed its connection (a client abort, nginx's 499)."""


class UpstreamError(Exception):
    """Base class of the failures that count against an upstream instance."""


class ConnectFailed(UpstreamError):
    """The TCP connection could not be made: the request was never sent.

    *reason* says how, as the routing page shows it: ``connect_refused`` (nothing listens),
    ``connect_timeout`` or ``connect_failed`` (anything else).
    """

    def __init__(self, message: str, reason: str = "connect_failed") -> None:
        super().__init__(message)
        self.reason = reason

    @classmethod
    def of(cls, error: OSError | TimeoutError) -> ConnectFailed:
        """The failure that *error* (from a connect) means."""
        if isinstance(error, ConnectionRefusedError):
            reason = "connect_refused"
        elif isinstance(error, TimeoutError):
            reason = "connect_timeout"
        else:
            reason = "connect_failed"
        return cls(f"connect failed: {error.strerror or type(error).__name__}", reason)


class UpstreamTimeout(UpstreamError):
    """The instance did not answer within the attempt's time."""


class UpstreamBroken(UpstreamError):
    """The connection broke before a whole answer arrived; *reused* if it came from the pool."""

    def __init__(self, message: str, reused: bool) -> None:
        super().__init__(message)
        self.reused = reused


class UpstreamBadResponse(UpstreamError):
    """The answer's framing or syntax is invalid."""


class LocalResourceError(Exception):
    """The gateway ran out of a resource of its own (EMFILE, ENFILE, ENOBUFS, ENOMEM,
    EADDRNOTAVAIL) before a connection could be tried: its own fault, not the instance's.

    *reason* is the errno's name, for the metric.
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def failure_reason(error: UpstreamError | None, status: int = 0) -> str:
    """A short code for why an attempt failed, as the routing page shows an ejection's cause."""
    if error is None:
        return f"status_{status}"
    if isinstance(error, ConnectFailed):
        return error.reason
    if isinstance(error, UpstreamTimeout):
        return "timeout"
    return "bad_response" if isinstance(error, UpstreamBadResponse) else "connection_broken"
