"""Tests of procpool_worker.framing's FrameReader and ReplyWriter, in this process over pipes.

Run from python/: ``python3 -m unittest discover -s tests -p test_framing.py -v``.
"""

import os
import random
import struct
import threading
import unittest
from unittest import mock

from procpool_worker import framing


def frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


class FrameReaderTest(unittest.TestCase):
    def setUp(self):
        self.read_fd, self.write_fd = os.pipe()
        self.addCleanup(os.close, self.read_fd)
        self.addCleanup(self.close_write_end)

    def close_write_end(self):
        if self.write_fd is not None:
            os.close(self.write_fd)
            self.write_fd = None

    def read_all(self, reader):
        """Every payload until end of stream, as bytes, copied before the next fill."""
        payloads = []
        while True:
            view = reader.next_frame()
            if view is not None:
                payloads.append(bytes(view))
                continue
            if not reader.fill():
                return payloads

    def feed(self, data, piece):
        """A new pipe's read end, ``data`` written into it ``piece`` bytes at a time by a
        thread that then closes the write end."""
        read_fd, write_fd = os.pipe()
        self.addCleanup(os.close, read_fd)

        def write():
            try:
                for start in range(0, len(data), piece):
                    os.write(write_fd, data[start:start + piece])
            finally:
                os.close(write_fd)

        writer = threading.Thread(target=write)
        writer.start()
        self.addCleanup(writer.join, 10)
        return read_fd

    def test_frames_split_anywhere_compacted_and_grown(self):
        # A 16-byte buffer makes every path run: frames straddling reads, compaction when the
        # read position passes half, growth for payloads up to 40 times the buffer.
        rng = random.Random(5)
        payloads = [bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 3, 12, 100, 640])))
                    for _ in range(200)]
        data = b"".join(frame(payload) for payload in payloads)
        for piece in (1, 3, 7, 64, len(data)):
            with self.subTest(piece=piece):
                read_fd = self.feed(data, piece)
                self.assertEqual(self.read_all(framing.FrameReader(read_fd, size=16)),
                                 payloads)

    def test_views_are_the_payloads_in_place(self):
        # The third frame promises 5 bytes and has 3 so far.
        os.write(self.write_fd, frame(b"first") + frame(b"second") + b"\x00\x00\x00\x05thi")
        reader = framing.FrameReader(self.read_fd)
        self.assertIsNone(reader.next_frame())
        self.assertEqual(reader.fill(), 26)
        first, second = reader.next_frame(), reader.next_frame()
        self.assertIsInstance(first, memoryview)
        self.assertEqual((bytes(first), bytes(second)), (b"first", b"second"))
        self.assertIsNone(reader.next_frame(), "a header without its payload is not a frame")
        self.assertEqual(reader.buffered, 7)

    def test_end_inside_a_frame_is_reported(self):
        for tail, message in ((b"\x00\x00", "after 2 of 4 header bytes"),
                              (b"\x00\x00\x00\x09abc", "after 3 of 9 payload bytes")):
            with self.subTest(tail=tail):
                reader = framing.FrameReader(self.feed(frame(b"ok") + tail, 1 << 16))
                self.assertEqual(self.read_all(reader), [b"ok"])
                self.assertEqual(reader.buffered, len(tail))
                self.assertIn(message, str(reader.end_of_stream_error()))


class ReplyWriterTest(unittest.TestCase):
    def setUp(self):
        self.read_fd, self.write_fd = os.pipe()
        self.addCleanup(os.close, self.read_fd)
        self.addCleanup(os.close, self.write_fd)

    def pipe_contents(self):
        os.set_blocking(self.read_fd, False)
        try:
            return os.read(self.read_fd, 1 << 20)
        except BlockingIOError:
            return b""

    def test_nothing_is_written_until_flush(self):
        writer = framing.ReplyWriter(self.write_fd)
        writer.add_frame(b"one")
        writer.write(b"raw")
        self.assertEqual(writer.pending_bytes, 10)
        self.assertEqual(self.pipe_contents(), b"")
        writer.flush()
        self.assertEqual(self.pipe_contents(), frame(b"one") + b"raw")
        self.assertEqual(writer.pending_bytes, 0)

    def test_each_writes_at_once_and_a_full_batch_flushes(self):
        writer = framing.ReplyWriter(self.write_fd, each=True)
        writer.add_frame(b"now")
        self.assertEqual(self.pipe_contents(), frame(b"now"))
        # A threshold below the default 64 KiB, which is also the pipe's capacity.
        writer = framing.ReplyWriter(self.write_fd, flush_bytes=1024)
        writer.add_frame(b"x" * 600)
        self.assertEqual(self.pipe_contents(), b"")
        writer.add_frame(b"y" * 600)
        self.assertEqual(self.pipe_contents(), frame(b"x" * 600) + frame(b"y" * 600))

    def test_partial_writes_are_completed_in_order(self):
        # A writev that takes at most 5 bytes per call, and counts its buffers: the writer
        # must resume inside a buffer and pass no more than 1024 buffers at once.
        real_writev = os.writev
        calls = []

        def stingy_writev(fd, buffers):
            calls.append(len(buffers))
            return real_writev(fd, [b"".join(bytes(b) for b in buffers)[:5]])

        payloads = [str(i).encode() * 3 for i in range(700)]
        writer = framing.ReplyWriter(self.write_fd)
        for payload in payloads:
            writer.add_frame(payload)
        with mock.patch.object(framing.os, "writev", stingy_writev):
            writer.flush()
        self.assertEqual(self.pipe_contents(), b"".join(frame(p) for p in payloads))
        self.assertLessEqual(max(calls), framing.WRITEV_MAX_BUFFERS)
        self.assertEqual(max(calls), framing.WRITEV_MAX_BUFFERS)

    def test_a_failed_write_drops_what_was_pending(self):
        writer = framing.ReplyWriter(self.write_fd)
        writer.add_frame(b"lost")
        os.close(self.read_fd)
        self.read_fd = os.open(os.devnull, os.O_RDONLY)  # for the cleanup's close
        with self.assertRaises(BrokenPipeError):
            writer.flush()
        self.assertEqual(writer.pending_bytes, 0)
        writer.flush()  # nothing left to retry


if __name__ == "__main__":
    unittest.main()
