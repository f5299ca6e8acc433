#!/usr/bin/env python3
"""An HTTP/3 client for the integration tests, on aioquic (its http3_client example is the model).

Usage: h3_client.py HOST:PORT SERVER_NAME CA_FILE [--early-data] < plan.json

With --early-data the plan runs twice, the second time on a connection resumed with the first
one's session ticket, its requests sent as early data (0-RTT); the second run's results are
printed, with `resumed` and `early_data_accepted`.

The plan is a JSON list of requests, all sent on one QUIC connection (ALPN h3), the certificate
verified against CA_FILE for SERVER_NAME. Each request is an object:

  headers        [[name, value], ...]: the whole field section, pseudo-headers first, sent as is
                 (nothing is checked, so that a test can send a malformed one)
  upload_bytes   a body of that many bytes (a repeating pattern), streamed as the connection
                 takes it; default none
  body           a body given as text (instead of upload_bytes)
  trailers       [[name, value], ...] sent after the body
  reset_after    reset the stream (H3_REQUEST_CANCELLED) once this many body bytes were sent
  websocket      a list of text messages: the request is an extended CONNECT, and once it is
                 answered 200 each message is sent as a masked WebSocket text frame and its echo
                 awaited
  wait_for       (a request index): start this request once that one got its response head

The requests run concurrently. One JSON line is printed per request, in plan order:
  status, interim (the statuses of 1xx answers), headers, body (text, when under 64 KiB),
  body_bytes, body_ok (the body is the request's upload pattern, for echoes), trailers,
  answer_before_upload_end, messages (WebSocket echoes), error (a reset or a failure),
  peer_max_streams (the request streams the server let the client open when it began).
"""

import asyncio
import faulthandler
import json
import ssl
import sys
import time

from aioquic.asyncio import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import QuicEvent, StreamReset

PATTERN = bytes(range(251))
CHUNK = 64 * 1024
TIMEOUT = 60


def pattern(offset, size):
    out = bytearray()
    while len(out) < size:
        start = (offset + len(out)) % len(PATTERN)
        out += PATTERN[start : start + size - len(out)]
    return bytes(out)


class Exchange:
    def __init__(self, plan):
        self.plan = plan
        self.status = None
        self.interim = []
        self.headers = []
        self.trailers = []
        self.body = bytearray()
        self.body_bytes = 0
        self.body_ok = True
        self.error = None
        self.done = asyncio.Event()
        self.head = asyncio.Event()
        self.data = asyncio.Event()
        self.upload_ended_at = None
        self.unread = bytearray()
        self.messages = []
        self.answer_at = None
        self.peer_max_streams = None

    def result(self):
        text = bytes(self.body)
        out = {
            "status": self.status,
            "interim": self.interim,
            "headers": self.headers,
            "body_bytes": self.body_bytes,
            "body_ok": self.body_ok,
            "trailers": self.trailers,
            "error": self.error,
            "peer_max_streams": self.peer_max_streams,
        }
        if len(text) < 64 * 1024:
            out["body"] = text.decode("utf-8", "replace")
        if self.upload_ended_at is not None and self.answer_at is not None:
            out["answer_before_upload_end"] = self.answer_at < self.upload_ended_at
        return out


class Client(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.http = H3Connection(self._quic)
        self.exchanges = {}

    def quic_event_received(self, event: QuicEvent):
        if isinstance(event, StreamReset) and event.stream_id in self.exchanges:
            exchange = self.exchanges[event.stream_id]
            exchange.error = f"reset {event.error_code:#x}"
            exchange.head.set()
            exchange.data.set()
            exchange.done.set()
        for h3_event in self.http.handle_event(event):
            self.h3_event(h3_event)

    def h3_event(self, event):
        exchange = self.exchanges.get(event.stream_id)
        if exchange is None:
            return
        if isinstance(event, HeadersReceived):
            fields = [[k.decode(), v.decode()] for k, v in event.headers]
            status = next((int(v) for k, v in fields if k == ":status"), None)
            if exchange.status is None and status is not None and 100 <= status < 200:
                exchange.interim.append(status)
            elif exchange.status is None:
                exchange.status = status
                exchange.headers = fields
                exchange.answer_at = time.monotonic()
                exchange.head.set()
            else:
                exchange.trailers = fields
        elif isinstance(event, DataReceived):
            if event.data:
                if exchange.answer_at is None:
                    exchange.answer_at = time.monotonic()
                expected = pattern(exchange.body_bytes, len(event.data))
                exchange.body_ok = exchange.body_ok and expected == event.data
                exchange.body_bytes += len(event.data)
                if len(exchange.body) < 64 * 1024:
                    exchange.body += event.data
                exchange.unread += event.data
                exchange.data.set()
        if getattr(event, "stream_ended", False):
            exchange.done.set()
            exchange.head.set()

    async def drained(self, stream_id, below):
        stream = self._quic._streams.get(stream_id)
        while stream is not None and len(stream.sender._buffer) > below:
            await asyncio.sleep(0.005)

    async def run(self, exchange, exchanges):
        plan = exchange.plan
        if "wait_for" in plan:
            await exchanges[plan["wait_for"]].head.wait()
        exchange.peer_max_streams = self._quic._remote_max_streams_bidi
        stream_id = self._quic.get_next_available_stream_id()
        self.exchanges[stream_id] = exchange
        headers = [(k.encode(), v.encode()) for k, v in plan["headers"]]
        upload = plan.get("upload_bytes")
        body = plan.get("body")
        trailers = plan.get("trailers")
        has_body = upload is not None or body is not None or trailers or "websocket" in plan
        self.http.send_headers(stream_id, headers, end_stream=not has_body)
        self.transmit()
        if "websocket" in plan:
            await self.websocket(stream_id, exchange, plan["websocket"])
        elif body is not None:
            self.http.send_data(stream_id, body.encode(), end_stream=not trailers)
        elif upload is not None:
            sent = 0
            reset_after = plan.get("reset_after")
            while sent < upload:
                size = min(CHUNK, upload - sent)
                self.http.send_data(stream_id, pattern(sent, size), end_stream=False)
                sent += size
                self.transmit()
                if reset_after is not None and sent >= reset_after:
                    self._quic.reset_stream(stream_id, 0x10C)
                    self.transmit()
                    exchange.error = "reset by us"
                    return
                await self.drained(stream_id, 4 * CHUNK)
            if not trailers:
                self.http.send_data(stream_id, b"", end_stream=True)
                exchange.upload_ended_at = time.monotonic()
        if trailers:
            fields = [(k.encode(), v.encode()) for k, v in trailers]
            self.http.send_headers(stream_id, fields, end_stream=True)
        self.transmit()
        await exchange.done.wait()

    async def websocket(self, stream_id, exchange, messages):
        await exchange.head.wait()
        if exchange.status != 200:
            return
        for message in messages:
            payload = message.encode()
            mask = b"\x01\x02\x03\x04"
            masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            frame = bytes([0x81, 0x80 | len(payload)]) + mask + masked
            self.http.send_data(stream_id, frame, end_stream=False)
            self.transmit()
            while True:
                unread = exchange.unread
                if len(unread) >= 2 and len(unread) >= 2 + (unread[1] & 0x7F):
                    length = unread[1] & 0x7F
                    exchange.messages.append(unread[2 : 2 + length].decode())
                    del unread[: 2 + length]
                    break
                if exchange.done.is_set():
                    return
                exchange.data.clear()
                await exchange.data.wait()
        self.http.send_data(stream_id, b"", end_stream=True)
        self.transmit()


async def run_plan(address, configuration, plan, **connect_args):
    host, port = address.rsplit(":", 1)
    async with connect(
        host.strip("[]"),
        int(port),
        configuration=configuration,
        create_protocol=Client,
        **connect_args,
    ) as client:
        exchanges = [Exchange(p) for p in plan]
        runs = [client.run(e, exchanges) for e in exchanges]
        try:
            await asyncio.wait_for(asyncio.gather(*runs), TIMEOUT)
        except asyncio.TimeoutError:
            print(f"timed out: {sum(e.done.is_set() for e in exchanges)} of {len(exchanges)} done", file=sys.stderr)
            for e in exchanges:
                if not e.done.is_set() and e.error is None:
                    e.error = "timed out"
        tls = client._quic.tls
        results = []
        for e in exchanges:
            result = e.result()
            result["messages"] = e.messages
            result["resumed"] = tls.session_resumed
            result["early_data_accepted"] = tls.early_data_accepted
            results.append(result)
        return results


async def main():
    # A run that hangs past its own timeout says where it stood, and ends.
    faulthandler.dump_traceback_later(TIMEOUT + 20, exit=True)
    address, server_name, ca = sys.argv[1], sys.argv[2], sys.argv[3]
    resume = "--early-data" in sys.argv[4:]
    plan = json.load(sys.stdin)
    configuration = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN)
    configuration.server_name = server_name
    # A handshake nobody answers fails the run rather than hang it.
    configuration.idle_timeout = 20.0
    configuration.verify_mode = ssl.CERT_REQUIRED
    configuration.load_verify_locations(ca)
    tickets = []
    results = await run_plan(
        address, configuration, plan, session_ticket_handler=tickets.append
    )
    if resume:
        # Again on a new connection, resumed with the ticket the first one got, the requests
        # sent as early data (0-RTT) before the handshake is done.
        await asyncio.sleep(0)
        if not tickets:
            raise SystemExit("no session ticket was issued")
        configuration.session_ticket = tickets[-1]
        results = await run_plan(address, configuration, plan, wait_connected=False)
    for result in results:
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
