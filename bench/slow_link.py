"""An emulated network link in front of the local AWS: an HTTP proxy that adds latency and limits bandwidth.

A real publish crosses the internet to S3; the moto server answers on loopback in well under a millisecond. The
kernel here has no netem queueing discipline, so the link is emulated in user space. Every request and every
response is delivered one-way-delay after it has gone through a bottleneck of the given rate, shared by all
connections in that direction (first come, first served), and a new connection waits for its handshakes (TCP,
and TLS as S3's HTTPS needs) before its first request goes through.

S3 keeps connections open between requests, and clients (botocore, the AWS CLI) reuse them; the moto server closes
each connection after one response. So the proxy keeps the client's connection open, as S3 would, and sends each
request to the moto server on a connection of its own, on loopback, where that costs nothing.

    python -m bench.slow_link --upstream 127.0.0.1:5000 --rtt-ms 30 --mbit 100

prints the port it listens on. The bench checks the link's figures with timed requests before using it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class Direction:
    """One direction of the link: a bottleneck of `rate` bytes per second, then `delay` seconds of propagation."""

    def __init__(self, rate: float, delay: float) -> None:
        self.rate = rate
        self.delay = delay
        self.free_at = 0.0

    async def carry(self, size: int) -> None:
        """Return once `size` bytes sent now would have arrived at the other end."""
        loop = asyncio.get_running_loop()
        self.free_at = max(loop.time(), self.free_at) + size / self.rate
        await asyncio.sleep(max(0.0, self.free_at + self.delay - loop.time()))


async def read_head(reader: asyncio.StreamReader) -> tuple[bytes, dict[str, str]] | None:
    """The start line and headers of a message, and the headers by lower-case name; None at the end of input."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        if b":" in line:
            name, value = line.split(b":", 1)
            headers[name.decode("latin-1").strip().lower()] = value.decode("latin-1").strip()
    return head, headers


async def read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    """A request's body, by Content-Length or chunked."""
    if "chunked" not in headers.get("transfer-encoding", "").lower():
        return await reader.readexactly(int(headers.get("content-length", "0")))
    body = b""
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            # The last chunk, then trailers if any, then an empty line.
            return body + size_line + await read_trailers(reader)
        body += size_line + await reader.readexactly(size + 2)


async def read_trailers(reader: asyncio.StreamReader) -> bytes:
    trailers = b""
    while True:
        line = await reader.readuntil(b"\r\n")
        trailers += line
        if line == b"\r\n":
            return trailers


def without_expect(head: bytes) -> bytes:
    """The head without Expect: the proxy answers 100-continue itself; the moto server gets the whole request."""
    lines = head.split(b"\r\n")
    return b"\r\n".join(line for line in lines if not line.lower().startswith(b"expect:"))


def keep_alive(response: bytes) -> bytes:
    """The moto server's response (ended by closing the connection) as S3 sends it: length given, connection kept."""
    head, separator, body = response.partition(b"\r\n\r\n")
    lines = [line for line in head.split(b"\r\n") if not line.lower().startswith(b"connection:")]
    names = {line.split(b":", 1)[0].strip().lower() for line in lines[1:]}
    if b"content-length" not in names and b"transfer-encoding" not in names:
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + separator + body


async def exchange(request: bytes, upstream: tuple[str, int]) -> bytes:
    reader, writer = await asyncio.open_connection(*upstream)
    try:
        writer.write(request)
        # Half-close: the moto server (werkzeug) reads on after its response until the client has nothing more to
        # send, or for 10 ms.
        writer.write_eof()
        await writer.drain()
        return keep_alive(await reader.read())
    finally:
        writer.close()


async def serve(listen_port: int, upstream: tuple[str, int], rtt: float, rate: float, handshakes: int) -> None:
    up = Direction(rate, rtt / 2)
    down = Direction(rate, rtt / 2)

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.sleep(handshakes * rtt)
            while (message := await read_head(reader)) is not None:
                head, headers = message
                if headers.get("expect", "").lower() == "100-continue":
                    # The client sends the body once the server says so, a round trip later.
                    await up.carry(len(head))
                    await down.carry(len(CONTINUE))
                    writer.write(CONTINUE)
                    await writer.drain()
                    body = await read_body(reader, headers)
                    await up.carry(len(body))
                else:
                    body = await read_body(reader, headers)
                    await up.carry(len(head) + len(body))
                response = await exchange(without_expect(head) + body, upstream)
                await down.carry(len(response))
                writer.write(response)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(connection, "127.0.0.1", listen_port)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True, help="host:port of the moto server")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: any free port)")
    parser.add_argument("--rtt-ms", type=float, default=30.0)
    parser.add_argument("--mbit", type=float, default=100.0)
    parser.add_argument("--handshakes", type=int, default=2, help="round trips before a new connection carries data")
    args = parser.parse_args()
    host, port = args.upstream.rsplit(":", 1)
    try:
        asyncio.run(serve(args.port, (host, int(port)), args.rtt_ms / 1000, args.mbit * 1e6 / 8, args.handshakes))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
