#!/usr/bin/env python3
"""The WebSocket load client for the benchmark's ws rows (standard library only, raw sockets).

  ws_client.py open PORT COUNT HOLD_SECONDS HOST PATH READY_FILE
      Opens COUNT tunnels (HTTP/1.1 Upgrade, 101 expected), writes READY_FILE once all are open,
      holds them HOLD_SECONDS (run.sh samples the proxy's memory meanwhile), then checks that
      every tunnel still echoes one message (none was closed by a timeout while held) and
      closes them all. Exits non-zero, saying why, if any tunnel failed.
  ws_client.py echo PORT CONNS WARMUP DURATION HOST PATH DEPTH SIZE
      CONNS tunnels, each sending DEPTH text frames of SIZE bytes in one write and waiting for
      their DEPTH echoes, over and over: WARMUP seconds discarded, then DURATION measured.
      Prints the line wrk's report.lua prints, so run.sh parses both alike:
      RESULT messages duration_us p50_us p99_us errors 0
      (latencies: the round trip of one batch of DEPTH messages).

Connects to 127.0.0.1 only; every wait is bounded.
"""

import asyncio
import base64
import os
import sys
import time

OPEN_CONCURRENCY = 256  # handshakes in flight at once: a burst, not a SYN flood


async def handshake(port: int, host: str, path: str):
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    if not head.startswith(b"HTTP/1.1 101"):
        writer.close()
        raise RuntimeError(f"no 101 from port {port}: {head[:80]!r}")
    return reader, writer


def client_frame(payload: bytes) -> bytes:
    # A client must mask; the proxies only tunnel bytes, so one random key per run is enough.
    mask = os.urandom(4)
    key = (mask * (len(payload) // 4 + 1))[: len(payload)]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(len(payload), "big")
    return bytes((0x81, 0x80 | len(payload))) + mask + masked


async def open_tunnels(port: int, count: int, hold: float, host: str, path: str, ready: str) -> int:
    gate = asyncio.Semaphore(OPEN_CONCURRENCY)

    async def one():
        async with gate:
            return await handshake(port, host, path)

    results = await asyncio.gather(*(one() for _ in range(count)), return_exceptions=True)
    tunnels = [r for r in results if not isinstance(r, BaseException)]
    failed = [r for r in results if isinstance(r, BaseException)]
    if failed:
        print(f"{len(failed)} of {count} tunnels failed to open; first: {failed[0]!r}", file=sys.stderr)
        for _, writer in tunnels:
            writer.close()
        return 1
    with open(ready, "w") as out:
        out.write(f"{len(tunnels)}\n")
    await asyncio.sleep(hold)
    message = client_frame(b"still there?")

    async def check(reader, writer):
        async with gate:
            writer.write(message)
            await asyncio.wait_for(reader.readexactly(2 + 12), 10)

    checks = await asyncio.gather(*(check(r, w) for r, w in tunnels), return_exceptions=True)
    dead = [c for c in checks if isinstance(c, BaseException)]
    for _, writer in tunnels:
        writer.close()
    if dead:
        print(f"{len(dead)} of {count} tunnels were closed while held; first: {dead[0]!r}", file=sys.stderr)
        return 1
    return 0


async def echo(port: int, conns: int, warmup: float, duration: float, host: str, path: str,
               depth: int, size: int) -> int:
    if not 0 < size < 126:
        print("SIZE must be 1..125 (one-byte length frames)", file=sys.stderr)
        return 2
    tunnels = await asyncio.gather(*(handshake(port, host, path) for _ in range(conns)))
    batch = client_frame(b"x" * size) * depth
    answer = (2 + size) * depth
    start = time.monotonic()
    measure_from, stop = start + warmup, start + warmup + duration
    counted = [0]
    rtts: list = []
    errors = [0]

    async def pump(reader, writer):
        while True:
            sent = time.monotonic()
            if sent >= stop:
                return
            writer.write(batch)
            try:
                await asyncio.wait_for(reader.readexactly(answer), 10)
            except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                errors[0] += 1
                return
            done = time.monotonic()
            if sent >= measure_from and done <= stop:
                counted[0] += depth
                rtts.append(done - sent)

    await asyncio.gather(*(pump(r, w) for r, w in tunnels))
    for _, writer in tunnels:
        writer.close()
    rtts.sort()

    def percentile(p: float) -> int:
        return int(rtts[min(len(rtts) - 1, int(len(rtts) * p))] * 1e6) if rtts else 0

    print(f"RESULT {counted[0]} {int(duration * 1e6)} {percentile(0.5)} {percentile(0.99)} {errors[0]} 0")
    return 0 if counted[0] > 0 else 1


def main() -> int:
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "open":
        port, count, hold, host, path, ready = args
        return asyncio.run(open_tunnels(int(port), int(count), float(hold), host, path, ready))
    if mode == "echo":
        port, conns, warmup, duration, host, path, depth, size = args
        return asyncio.run(echo(int(port), int(conns), float(warmup), float(duration), host, path,
                                int(depth), int(size)))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
