#!/usr/bin/env python3
"""A WebSocket echo origin for the benchmark's ws rows: RFC 6455 handshake, then every data frame
back to the sender (unmasked, as a server sends), pings answered, a close frame echoed and the
connection closed.

Usage: ws_origin.py PORT
Listens on 127.0.0.1:PORT only, standard library only (asyncio protocols, not streams: the echo
path is one data_received call per read, not a coroutine hop per frame), runs until killed.
"""

import asyncio
import base64
import hashlib
import sys

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def frame(opcode: int, payload: bytes) -> bytes:
    size = len(payload)
    if size < 126:
        head = bytes((0x80 | opcode, size))
    elif size < 65536:
        head = bytes((0x80 | opcode, 126)) + size.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 127)) + size.to_bytes(8, "big")
    return head + payload


def unmask(mask: bytes, payload: bytes) -> bytes:
    # One big-integer XOR instead of a Python loop per byte.
    size = len(payload)
    key = (mask * (size // 4 + 1))[:size]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(size, "big")


class Echo(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = bytearray()
        self.upgraded = False
        self.transport = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.upgraded:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > 16384:
                    self.transport.close()
                return
            head = bytes(self.buffer[:end]).decode("latin-1")
            del self.buffer[: end + 4]
            key = ""
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "sec-websocket-key":
                    key = value.strip()
            if not key:
                self.transport.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                self.transport.close()
                return
            accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
            self.transport.write(
                (
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    f"Sec-WebSocket-Accept: {accept}\r\n\r\n"
                ).encode()
            )
            self.upgraded = True
        self.echo()

    def echo(self) -> None:
        buf, pos, out = self.buffer, 0, bytearray()
        while len(buf) - pos >= 2:
            opcode, size = buf[pos] & 0x0F, buf[pos + 1] & 0x7F
            masked, head = buf[pos + 1] & 0x80, 2
            if size == 126:
                if len(buf) - pos < 4:
                    break
                size, head = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif size == 127:
                if len(buf) - pos < 10:
                    break
                size, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            mask_at = pos + head
            if masked:
                head += 4
            if len(buf) - pos < head + size:
                break
            payload = bytes(buf[pos + head : pos + head + size])
            if masked:
                payload = unmask(bytes(buf[mask_at : mask_at + 4]), payload)
            pos += head + size
            if opcode == 0x8:
                out += frame(0x8, payload[:2])
                self.transport.write(bytes(out))
                self.transport.close()
                return
            out += frame(0xA if opcode == 0x9 else opcode, payload)
        del buf[:pos]
        if out:
            self.transport.write(bytes(out))


async def main() -> None:
    port = int(sys.argv[1])
    server = await asyncio.get_running_loop().create_server(Echo, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
