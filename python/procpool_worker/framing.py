"""Length-prefixed frames on byte streams: a 4-byte big-endian length, then the payload.

This is Erlang's ``{packet, 4}`` framing, which the pool speaks on the worker's stdin and
stdout.
"""

from __future__ import annotations

import struct

TYPE_CHECKING = False  # importing typing would add to every worker's init time
if TYPE_CHECKING:
    from typing import BinaryIO

_LENGTH = struct.Struct(">I")

HEADER_SIZE = _LENGTH.size
MAX_PAYLOAD = 0xFFFFFFFF


class FramingError(Exception):
    """The stream ended inside a frame."""


def pack_length(length: int) -> bytes:
    """Return the 4-byte length prefix for a payload of ``length`` bytes."""
    return _LENGTH.pack(length)


def read_frame(stream: BinaryIO) -> bytes | None:
    """Read one frame's payload; return None on end of stream between frames.

    Raises FramingError if the stream ends after a partial header or payload.
    """
    header = _read_up_to(stream, HEADER_SIZE)
    if not header:
        return None
    if len(header) < HEADER_SIZE:
        raise FramingError(f"stream ended after {len(header)} of {HEADER_SIZE} header bytes")
    (length,) = _LENGTH.unpack(header)
    payload = _read_up_to(stream, length)
    if len(payload) < length:
        raise FramingError(f"stream ended after {len(payload)} of {length} payload bytes")
    return payload


def write_frame(stream: BinaryIO, payload: bytes) -> None:
    """Write one frame with a single write, then flush.

    One write keeps a frame contiguous even if something else shares the stream.
    """
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes does not fit a 4-byte length")
    stream.write(_LENGTH.pack(len(payload)) + payload)
    stream.flush()


def _read_up_to(stream: BinaryIO, size: int) -> bytes:
    # Unbuffered streams may return fewer bytes than asked for before the end of stream.
    chunks = []
    remaining = size
    while remaining:
        chunk = stream.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)
