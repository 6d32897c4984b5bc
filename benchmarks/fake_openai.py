"""A fixed-latency fake OpenAI-compatible endpoint for benchmarks (127.0.0.1 only).

Minimal HTTP/1.1 on asyncio streams (keep-alive, Content-Length bodies): every POST is answered
after ``--latency-ms`` with the same short chat completion; GET /v1/models lists one model.
Unlimited concurrency: each connection is its own task.
"""

from __future__ import annotations

import argparse
import asyncio
import json

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


async def serve(port: int, latency: float) -> None:
    server = await asyncio.start_server(lambda r, w: handle(r, w, latency), "127.0.0.1", port,
                                        backlog=4096)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, default=50)
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.latency_ms / 1000))
