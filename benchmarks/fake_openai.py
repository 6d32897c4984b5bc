"""A fixed-latency fake OpenAI-compatible endpoint for benchmarks (127.0.0.1 only).

Minimal HTTP/1.1 on asyncio streams (keep-alive, Content-Length bodies): every POST is answered
after ``--latency-ms`` with the same short chat completion; GET /v1/models lists one model.
Unlimited concurrency: each connection is its own task. ``--processes K`` starts K server
processes on the same port (SO_REUSEPORT; the kernel spreads connections over them); uvloop is
used when installed. Measured on 2 loaded cores: ~0.1 ms of server CPU per request, so one
process serves several thousand req/s -- the server is not what limits the benchmarks.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import signal
import socket
import sys

COMPLETION = json.dumps({
    "id": "x", "object": "chat.completion", "model": "fake",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok fine"},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
}).encode()
MODELS = json.dumps({"object": "list", "data": [{"id": "fake", "object": "model"}]}).encode()


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 latency: float) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method = lines[0].split(" ", 1)[0]
            length = 0
            for line in lines[1:]:
                if line.lower().startswith("content-length:"):
                    length = int(line.split(":", 1)[1])
            if length:
                await reader.readexactly(length)
            if method == "POST":
                await asyncio.sleep(latency)
                body = COMPLETION
            else:
                body = MODELS
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def serve(port: int, latency: float, reuse_port: bool = False) -> None:
    server = await asyncio.start_server(lambda r, w: handle(r, w, latency), "127.0.0.1", port,
                                        backlog=4096, reuse_port=reuse_port)
    async with server:
        await server.serve_forever()


def run(port: int, latency: float, reuse_port: bool = False) -> None:
    try:
        import uvloop  # optional: a faster event loop when installed
    except ImportError:
        asyncio.run(serve(port, latency, reuse_port))
    else:
        uvloop.run(serve(port, latency, reuse_port))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--processes", type=int, default=1,
                        help="server processes sharing the port (SO_REUSEPORT)")
    args = parser.parse_args()
    if args.processes <= 1:
        run(args.port, args.latency_ms / 1000)
    else:
        assert hasattr(socket, "SO_REUSEPORT"), "--processes needs SO_REUSEPORT (Linux)"
        workers = [multiprocessing.Process(target=run, args=(args.port, args.latency_ms / 1000,
                                                              True), daemon=True)
                   for _ in range(args.processes)]
        for worker in workers:
            worker.start()
        # SIGTERM to the parent ends the workers too (daemons are terminated at exit).
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        for worker in workers:
            worker.join()
