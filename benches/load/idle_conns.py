#!/usr/bin/env python3
"""Opens N keep-alive client connections, sends one request on each, then holds them idle.

Usage: idle_conns.py PORT COUNT HOLD_SECONDS HOST READY_FILE
Connects to 127.0.0.1 only. Writes READY_FILE once every connection has had its answer, keeps
them open HOLD_SECONDS (run.sh samples the proxy's memory meanwhile), then closes them and exits.
"""

import socket
import sys
import time


def main() -> int:
    port, count, hold = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    host, ready_file = sys.argv[4], sys.argv[5]
    request = f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    conns = []
    deadline = time.monotonic() + 60  # bounded even against a proxy that answers slowly
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(request)
        answer = sock.recv(65536)
        if not answer.startswith(b"HTTP/1.1 200"):
            print(f"unexpected answer: {answer[:80]!r}", file=sys.stderr)
            return 1
        conns.append(sock)
        if time.monotonic() > deadline:
            print("opening connections took over 60 s", file=sys.stderr)
            return 1
    with open(ready_file, "w") as ready:
        ready.write(f"{len(conns)}\n")
    time.sleep(hold)
    for sock in conns:
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
