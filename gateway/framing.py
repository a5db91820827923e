"""How much of a chunked message may be framing rather than data, on either side of the proxy.

Chunk extensions and trailer fields are not body bytes: without a bound of their own, a peer
could send megabytes of them that no body limit sees, and llhttp gathers a trailer field whole
before handing it over. Both are bounded together, as Go's net/http bounds chunk overhead: each
chunk may carry 16 bytes of framing and twice its own size; what a read brings beyond that is
its excess, and a message whose excess, summed over reads in which no data earned it back, tops
``MAX_FRAMING`` is refused. Ordinary framing (``1a2b\\r\\n``, ``\\r\\n``, the last chunk) never
comes near it, even for one-byte chunks.
"""

from __future__ import annotations

MAX_FRAMING = 64 * 1024  # as much as the header section may hold (Envoy counts trailers there)
PER_CHUNK = 16
PER_BYTE = 2


def framing_excess(excess: int, fed: int, body: int, chunks: int) -> int:
    """The excess after one read of *fed* bytes that held *body* data bytes in *chunks* chunks."""
    return max(0, excess + fed - (PER_BYTE + 1) * body - PER_CHUNK * chunks)


def chunk(data: bytes) -> bytes:
    """*data* as one chunk of a chunked body (the gateway frames every chunked body it sends)."""
    return b"%x\r\n%s\r\n" % (len(data), data)
