"""Length-prefixed frames on byte streams: a 4-byte big-endian length, then the payload.

This is Erlang's ``{packet, 4}`` framing, which the pool speaks on the worker's stdin and
stdout.
"""

from __future__ import annotations

import os
import struct

TYPE_CHECKING = False  # importing typing would add to every worker's init time
if TYPE_CHECKING:
    from typing import BinaryIO

_LENGTH = struct.Struct(">I")

HEADER_SIZE = _LENGTH.size
MAX_PAYLOAD = 0xFFFFFFFF

READ_BUFFER_SIZE = 256 * 1024
# os.writev takes at most IOV_MAX (1024 on Linux) buffers per call.
WRITEV_MAX_BUFFERS = 1024


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


class FrameReader:
    """Frames read from a file descriptor into one reusable buffer, so that a batch of
    pipelined requests costs one read() and no intermediate ``bytes``.

    ``next_frame()`` hands out frames already buffered; ``fill()`` reads more. A view returned
    by ``next_frame()`` is valid until the next ``fill()``, which may move the bytes under it.
    """

    def __init__(self, fd: int, size: int = READ_BUFFER_SIZE):
        self._fd = fd
        self._buffer = bytearray(size)
        self._view = memoryview(self._buffer)
        self._start = 0  # the first byte not yet handed out
        self._end = 0    # one past the last byte read

    @property
    def buffered(self) -> int:
        """Bytes read but not yet handed out as a frame."""
        return self._end - self._start

    def next_frame(self) -> memoryview | None:
        """The next complete payload in the buffer, or None if none is complete yet."""
        available = self._end - self._start
        if available < HEADER_SIZE:
            return None
        (length,) = _LENGTH.unpack_from(self._buffer, self._start)
        if available - HEADER_SIZE < length:
            return None
        begin = self._start + HEADER_SIZE
        self._start = begin + length
        return self._view[begin:self._start]

    def fill(self) -> int:
        """Block for one read; return the number of bytes read, 0 at end of stream."""
        self._make_room()
        count = os.readv(self._fd, [self._view[self._end:]])
        self._end += count
        return count

    def end_of_stream_error(self) -> FramingError:
        """The error for a stream that ended with ``buffered`` bytes of an unfinished frame."""
        available = self.buffered
        if available < HEADER_SIZE:
            return FramingError(f"stream ended after {available} of {HEADER_SIZE} header bytes")
        (length,) = _LENGTH.unpack_from(self._buffer, self._start)
        return FramingError(f"stream ended after {available - HEADER_SIZE} of {length} "
                            f"payload bytes")

    def _make_room(self) -> None:
        start, end = self._start, self._end
        if start == end:
            self._start = self._end = 0
            return
        capacity = len(self._buffer)
        # What the frame at the read position needs in all; fill() is only called once no
        # complete frame is left, so this is more than is buffered.
        needed = HEADER_SIZE
        if end - start >= HEADER_SIZE:
            needed += _LENGTH.unpack_from(self._buffer, start)[0]
        if needed > capacity:
            # A new buffer rather than a resize: a bytearray cannot be resized while a view
            # of it exists, and a caller may still hold one.
            size = capacity
            while size < needed:
                size *= 2
            grown = bytearray(size)
            grown[:end - start] = self._view[start:end]
            self._buffer, self._view = grown, memoryview(grown)
        elif start >= capacity // 2 or needed > capacity - start:
            # Past half, the bytes kept are no more than the bytes freed before them, so the
            # source and destination of the copy do not overlap.
            if end - start <= start:
                self._view[:end - start] = self._view[start:end]
            else:
                self._view[:end - start] = bytes(self._view[start:end])
        else:
            return
        self._start, self._end = 0, end - start


class ReplyWriter:
    """Reply frames gathered in a list and written with os.writev when ``flush()`` is called.

    Everything the worker puts on its stdout goes through one writer, faults' deliberately
    broken frames included, so that bytes reach the pool in the order they were produced.
    With ``each`` set, every frame is written at once (one write per reply).
    """

    def __init__(self, fd: int, *, each: bool = False, flush_bytes: int = 64 * 1024):
        self._fd = fd
        self._each = each
        self._flush_bytes = flush_bytes
        self._pending: list[bytes | memoryview] = []
        self._pending_bytes = 0

    @property
    def pending_bytes(self) -> int:
        return self._pending_bytes

    def add_frame(self, payload: bytes) -> None:
        """Queue one frame: the length prefix, then ``payload``."""
        if len(payload) > MAX_PAYLOAD:
            raise ValueError(f"payload of {len(payload)} bytes does not fit a 4-byte length")
        pending = self._pending
        pending.append(_LENGTH.pack(len(payload)))
        if payload:
            pending.append(payload)
        # Inlined rather than a call to _added: this runs once per reply.
        self._pending_bytes += HEADER_SIZE + len(payload)
        if self._each or self._pending_bytes >= self._flush_bytes:
            self.flush()

    def write(self, data: bytes) -> None:
        """Queue raw bytes (a fault's broken frame); the file-like name lets faults use it."""
        if data:
            self._pending.append(data)
            self._added(len(data))

    def flush(self) -> None:
        """Write everything queued, finishing partial writes."""
        pending = self._pending
        if not pending:
            return
        index = 0
        try:
            while index < len(pending):
                written = os.writev(self._fd, pending[index:index + WRITEV_MAX_BUFFERS])
                # Skip the buffers written whole; keep the unwritten tail of a partial one.
                while written:
                    size = len(pending[index])
                    if written < size:
                        pending[index] = memoryview(pending[index])[written:]
                        break
                    written -= size
                    index += 1
        finally:
            # After a failed write (the pool has gone) nothing is retried: the rest is dropped.
            pending.clear()
            self._pending_bytes = 0

    def _added(self, size: int) -> None:
        self._pending_bytes += size
        if self._each or self._pending_bytes >= self._flush_bytes:
            self.flush()
