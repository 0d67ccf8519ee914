"""Long local fuzz run over every decoder that reads peer bytes.

    .venv/bin/python bench/fuzz_long.py [--inputs 1000000] [--seed 1] [--session-share 0.03]

Feeds random and mutated inputs (no hypothesis: plain ``random`` for speed) to:

* ``cbor``     -- CborCodec.decode with a RefTable-backed on_reference (random CBOR with
  reference tags, then mutated; and raw random bytes);
* ``msgpack``  -- MsgpackStreamDecoder fed in random pieces (random msgpack with ext
  types, mutated; raw bytes);
* ``framing``  -- the HTTP/2 body FrameDecoder;
* ``spdy3``    -- the SPDY/3 FrameParser (mutated Go recordings, random bytes);
* ``swarm``    -- libswarm Message.from_wire on random maps and decoded CBOR;
* ``h2sess`` / ``spdysess`` -- whole server Sessions over an in-memory stream pair fed a
  mutated valid conversation (h2) or a mutated Go transcript (spdy), with an
  autojump clock (see tests/engine/test_fuzz_sessions.py for the checks).

Prints progress every ``--every`` inputs and each new finding signature (with the
input in hex, saved under ``--out``). Known, already-reported bugs are counted
separately (LIBCHAN_FUZZ_STRICT=1 treats them as findings too). Exit status 1 if any
new finding.
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import time
import traceback
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "tests" / "engine"))  # test_fuzz_sessions
sys.path.insert(0, str(REPO))

import cbor2  # noqa: E402
import msgpack  # noqa: E402

import test_fuzz_sessions as fz  # noqa: E402
from libchan.messages.cbor_codec import CborCodec  # noqa: E402
from libchan.messages.framing import FrameDecoder  # noqa: E402
from libchan.messages.msgpack_codec import MsgpackCodec  # noqa: E402
import libchan  # noqa: E402

logging.getLogger("libchan").setLevel(logging.CRITICAL)

_TAGS = [41399, 41400, 41401, 41402, 41403, 41404, 41405, 0, 1, 2, 3, 258, 999]


def rand_value(rnd: random.Random, depth: int = 0, *, cbor: bool = True):
    r = rnd.random()
    if depth > 3 or r < 0.5:
        c = rnd.randrange(10)
        if c == 0:
            return None
        if c == 1:
            return rnd.random() < 0.5
        if c == 2:
            return rnd.choice([0, -1, 23, 24, 255, 256, 2**31, 2**63 - 1, -(2**63), 2**64 - 1, rnd.randrange(-1000, 1000)])
        if c == 3:
            return rnd.choice([0.0, -0.0, 1.5, float("inf"), float("nan"), 1e300])
        if c == 4:
            return "".join(rnd.choice("abc\u00e9\u4e2d\U0001f600") for _ in range(rnd.randrange(6)))
        if c == 5:
            return rnd.randbytes(rnd.randrange(10))
        if c in (6, 7):
            if cbor:
                content = rnd.choice([rnd.randrange(0, 40), -1, "x", None, 1.5, [1], 2**64 + 1])
                return cbor2.CBORTag(rnd.choice(_TAGS), content)
            return msgpack.ExtType(rnd.randrange(0, 9), rnd.randbytes(rnd.choice([4, 8, 12, 0, 3])))
        return rnd.randrange(100)
    if r < 0.75:
        return [rand_value(rnd, depth + 1, cbor=cbor) for _ in range(rnd.randrange(4))]
    return {rnd.choice(["a", "Verb", "Args", "Ret", 1, -2]): rand_value(rnd, depth + 1, cbor=cbor) for _ in range(rnd.randrange(4))}


def maybe_mutate(rnd: random.Random, data: bytes) -> bytes:
    if rnd.random() < 0.6:
        return fz.mutate(data, fz.random_ops(rnd, rnd.randint(1, 4)))
    return data


class Runner:
    def __init__(self, seed: int, session_share: float, out: Path) -> None:
        self.rnd = random.Random(seed)
        self.session_share = session_share
        self.out = out
        self.counts: Counter[str] = Counter()
        self.findings: Counter[str] = Counter()
        self.known: Counter[str] = Counter()
        self.cbor = CborCodec(max_message_size=1 << 16, max_depth=32)
        self.msgpack = MsgpackCodec(max_message_size=1 << 12, max_depth=32)
        self.h2_seeds = [fz.h2_seed()]
        self.go = list(fz.go_transcripts(8192).values())

    # -- one input per decoder ------------------------------------------------------------
    def do_cbor(self) -> None:
        rnd = self.rnd
        data = rnd.randbytes(rnd.randrange(64)) if rnd.random() < 0.2 else fz._dumps(rand_value(rnd))
        fz.cbor_case(maybe_mutate(rnd, data), self.cbor)

    def do_msgpack(self) -> None:
        rnd = self.rnd
        parts = []
        for _ in range(rnd.randrange(1, 4)):
            try:
                parts.append(msgpack.packb(rand_value(rnd, cbor=False), use_bin_type=True))
            except Exception:  # noqa: BLE001
                parts.append(rnd.randbytes(8))
        data = maybe_mutate(rnd, b"".join(parts))
        piece = rnd.randint(1, 64)
        fz.msgpack_case([data[i : i + piece] for i in range(0, len(data), piece)], self.msgpack)

    def do_framing(self) -> None:
        rnd = self.rnd
        data = b"".join(fz.encode_frame(rnd.randbytes(rnd.randrange(40))) if rnd.random() < 0.7 else bytes([rnd.choice([0xF6, 0xF7])]) for _ in range(rnd.randrange(5)))
        data = maybe_mutate(rnd, data)
        dec = FrameDecoder(1 << 12)
        cut = rnd.randrange(len(data) + 1)
        try:
            dec.feed(data[:cut])
            dec.feed(data[cut:])
        except (libchan.RemoteProtocolError, libchan.MessageTooLargeError):
            pass

    def do_spdy3(self) -> None:
        rnd = self.rnd
        data = rnd.choice(self.go)[: rnd.randrange(1, 2048)] if self.go and rnd.random() < 0.8 else rnd.randbytes(rnd.randrange(200))
        data = maybe_mutate(rnd, data)
        fz.spdy_parser_case(data, rnd.randrange(len(data) + 1))

    def do_swarm(self) -> None:
        rnd = self.rnd
        v = rand_value(rnd)
        if rnd.random() < 0.5:
            v = {"Verb": rnd.choice([0, 6, 12, 13, -1, "ls", "x", None, True, 1.0]), "Args": v}
        elif rnd.random() < 0.5:
            v = fz.cbor_case(maybe_mutate(rnd, fz._dumps(v)), self.cbor)
        fz.swarm_case(v)

    def do_h2sess(self) -> None:
        rnd = self.rnd
        data = fz.mutate(rnd.choice(self.h2_seeds), fz.random_ops(rnd, rnd.randint(1, 5)), keep=len(fz.PREFACE))
        self._session(data, "h2")

    def do_spdysess(self) -> None:
        rnd = self.rnd
        if not self.go:
            return self.do_h2sess()
        data = fz.mutate(rnd.choice(self.go), fz.random_ops(rnd, rnd.randint(1, 5)))
        self._session(data, "spdy")

    def _session(self, data: bytes, profile: str) -> None:
        try:
            fz.run_session_case(data, profile, linger=self.rnd.choice([0.0, 0.0, 1.0]))
        except fz.Finding as finding:
            bug = fz.known_bug(finding)
            if bug is not None:
                self.known[bug] += 1
                return
            raise

    # -- driver ------------------------------------------------------------------------------
    def one(self) -> None:
        rnd = self.rnd
        if rnd.random() < self.session_share:
            name = rnd.choice(["h2sess", "spdysess"])
        else:
            name = rnd.choice(["cbor", "cbor", "msgpack", "msgpack", "framing", "spdy3", "swarm"])
        self.counts[name] += 1
        state = rnd.getstate()
        try:
            getattr(self, "do_" + name)()
        except Exception as exc:  # noqa: BLE001 - a finding
            leaf = fz._leaf(exc.__cause__) if exc.__cause__ is not None else exc
            tb = traceback.extract_tb(leaf.__traceback__)
            where = f"{tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno}" if tb else "?"
            sig = f"{name}: {type(leaf).__name__} at {where}: {str(exc)[:100]}"
            self.findings[sig] += 1
            if self.findings[sig] == 1:
                print(f"\nNEW FINDING #{len(self.findings)}: {sig}", flush=True)
                self.out.mkdir(parents=True, exist_ok=True)
                with open(self.out / f"finding-{len(self.findings)}.txt", "w") as f:
                    f.write(sig + "\n")
                    f.write(f"rng state before the input: {state!r}\n")
                    f.write("".join(traceback.format_exception(exc)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inputs", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--session-share", type=float, default=0.03)
    ap.add_argument("--every", type=int, default=50_000)
    ap.add_argument("--out", type=Path, default=Path("/tmp/libchan-fuzz-findings"))
    args = ap.parse_args()
    runner = Runner(args.seed, args.session_share, args.out)
    start = time.monotonic()
    for i in range(1, args.inputs + 1):
        runner.one()
        if i % args.every == 0 or i == args.inputs:
            el = time.monotonic() - start
            print(
                f"[{el:7.0f}s] {i:>9,} inputs ({i / el:,.0f}/s) findings={sum(runner.findings.values())}"
                f" ({len(runner.findings)} kinds) known-bug hits={dict(runner.known)} per decoder={dict(runner.counts)}",
                flush=True,
            )
    print("\nSUMMARY")
    print(f"inputs: {sum(runner.counts.values()):,} in {time.monotonic() - start:.0f}s: {dict(runner.counts)}")
    print(f"known-bug hits: {dict(runner.known)}")
    for sig, n in runner.findings.most_common():
        print(f"  {n:6d}  {sig}")
    if not runner.findings:
        print("no new findings")
    return 1 if runner.findings else 0


if __name__ == "__main__":
    raise SystemExit(main())
