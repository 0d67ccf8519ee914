"""The stream framing decoder holds a pending item as the pieces it came in.

A large item arriving over many reads is neither copied at every read nor held in
a buffer grown with spare capacity: what the decoder holds is what the memory
budget charges for it (``buffered``), about byte for byte (issue 11)."""

from __future__ import annotations

import random
import tracemalloc

import pytest

from libchan.errors import MessageTooLargeError
from libchan.messages.framing import KEEPALIVE, FrameDecoder, encode_frame

MIB = 1024 * 1024


def _body(rng: random.Random) -> tuple[bytes, list[bytes], int]:
    sizes = [0, 1, 23, 24, 255, 256, 65535, 65536, 70_000, 300_000, 2 * MIB + 3]
    payloads = [rng.randbytes(rng.choice(sizes)) for _ in range(12)]
    parts: list[bytes] = []
    keepalives = 0
    for p in payloads:
        if rng.random() < 0.3:
            parts.append(KEEPALIVE)
            keepalives += 1
        parts.append(encode_frame(p))
    return b"".join(parts), payloads, keepalives


@pytest.mark.parametrize("seed", range(8))
def test_any_split_gives_the_same_items(seed):
    rng = random.Random(seed)
    body, payloads, keepalives = _body(rng)
    d = FrameDecoder(4 * MIB)
    got: list[bytes] = []
    wire = free = 0
    pos = 0
    while pos < len(body):
        # pieces from one byte to several hundred KB, as bytes or as views
        n = rng.choice([1, 2, 7, 100, 5000, 16 * 1024, 40_000, 300_000])
        piece = body[pos : pos + n]
        items, f = d.feed(piece if rng.random() < 0.7 else bytes(memoryview(piece)))
        pos += n
        for payload, size in items:
            got.append(payload)
            wire += size
        free += f
    assert got == payloads
    assert free == keepalives
    assert wire + free == len(body)
    assert d.at_boundary() and d.buffered == 0


@pytest.mark.parametrize("piece", [1000, 256 * 1024])
def test_a_pending_item_takes_what_it_holds(piece):
    """15 MiB of a 16 MiB item, in small or large reads: the decoder's memory is the
    bytes held (within 2 %), not a grown buffer (a bytearray grown by appends keeps an
    eighth more) nor copies of what came before."""
    d = FrameDecoder(16 * MIB)
    header = b"\x5a" + (16 * MIB - 64).to_bytes(4, "big")
    chunk = b"\1" * piece
    tracemalloc.start()
    try:
        d.feed(header)
        for _ in range(15 * MIB // piece):
            d.feed(bytes(chunk))  # (each read is a new object, as from the socket)
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert d.buffered == len(header) + 15 * MIB // piece * piece
    assert held < d.buffered * 1.02
    # a read never copies what is already held
    assert peak < held + 4 * piece + 256 * 1024


def test_a_pending_item_is_checked_on_its_header():
    d = FrameDecoder(1000)
    with pytest.raises(MessageTooLargeError):
        d.feed(b"\x59\x03")
        d.feed(b"\xe9")  # 1001 bytes announced, split inside the header
