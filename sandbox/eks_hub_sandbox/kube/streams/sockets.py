"""What exec and port-forward sessions share: writing whole messages to the client's WebSocket."""

from __future__ import annotations

import asyncio

from aiohttp import web


class MessageSender:
    """Writes binary messages to a WebSocket one at a time (tasks of one session write
    concurrently; a message must not interleave with another); once the client is gone,
    messages are dropped."""

    def __init__(self, ws: web.WebSocketResponse):
        self.ws = ws
        self._lock = asyncio.Lock()

    async def send(self, message: bytes) -> None:
        async with self._lock:
            if not self.ws.closed:
                try:
                    await self.ws.send_bytes(message)
                except (ConnectionResetError, RuntimeError):
                    pass
