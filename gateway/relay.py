"""Relaying an instance's answer to the client: in one write when small, else as it arrives.

The answer's headers, sorted as they arrived (gateway.headers: hop-by-hop and framing
dropped, the gateway frames each answer itself), get the request's
``X-Request-ID`` (and ``X-Upstream-Instance`` with ``GATEWAY_DEBUG_HEADERS``). A streamed
answer goes at the client's pace: the instance is read no faster than the client reads
(:mod:`gateway.body`'s flow control), and a silence longer than the stream's idle time cuts
it, visibly (an unfinished chunked body).
"""

from __future__ import annotations

from gateway.answers import status_line
from gateway.errors import UpstreamError
from gateway.headers import field_value
from gateway.reply import Reply
from gateway.upstream import Answer


def answer_lines(answer: Answer, request_id: str, instance_id: str | None) -> list[bytes]:
    """The header lines the client gets; *instance_id* only with debug headers on."""
    lines = answer.lines
    lines.append(b"X-Request-ID: " + request_id.encode())
    if instance_id is not None:
        lines.append(b"X-Upstream-Instance: " + field_value(instance_id))
    return lines


def relay_now(reply: Reply, answer: Answer, lines: list[bytes]) -> bool:
    """Relay *answer* in one write if it is whole already; return whether it was."""
    status = answer.status
    line = status_line(status, answer.reason)
    if reply.request.method == b"HEAD" or status == 204 or status == 304:
        if answer.length is not None and reply.request.method == b"HEAD":
            lines.append(b"Content-Length: %d" % answer.length)
        reply.whole(status, line, lines, None)
        return True
    whole = answer.whole
    if whole is None:
        body = answer.body
        if body is None or not body.done:
            return False
        whole = body.take()  # ended as its head arrived (a short chunked answer)
    reply.whole(status, line, lines, whole)
    return True


async def relay_stream(reply: Reply, answer: Answer, lines: list[bytes], idle: float) -> None:
    """Relay a large or open-ended answer as it arrives; raises UpstreamError if the instance
    breaks off or is silent for *idle* seconds (the client's connection is then cut), and
    ClientGone if the client leaves."""
    body = answer.body
    assert body is not None
    reply.start(answer.status, status_line(answer.status, answer.reason), lines, answer.length)
    try:
        async for data in body.chunks(idle):
            await reply.send(data)
    except UpstreamError:
        reply.cut("the instance's answer broke off")
        raise
    reply.end()
