"""``pods/<name>/portforward``: what kubectl 1.31+ asks for first, SPDY/3.1 tunneled over a
WebSocket (subprotocol ``SPDY/3.1+portforward.k8s.io``; the messages' payloads form one byte
stream of SPDY frames).

Per forwarded connection kubectl opens two streams with the same ``requestid`` header: an
error stream (``streamtype: error``) and a data stream (``streamtype: data``), both naming
the pod's ``port``. Once both are there, the server connects to the pod's IP and port and
copies bytes both ways; a failure to connect is written on the error stream (kubectl
prints it). When the pod's side closes, the data stream and then the error stream get a
FIN: kubectl waits for the error stream to end before it closes the local connection.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

from . import spdy
from .sockets import MessageSender

log = logging.getLogger(__name__)

PROTOCOL = "SPDY/3.1+portforward.k8s.io"
CONNECT_TIMEOUT = 5.0
CHUNK = 32 * 1024


@dataclass
class _Pair:
    """The two streams of one forwarded connection."""

    port: int
    error_id: int | None = None
    data_id: int | None = None
    inbound: asyncio.Queue = field(default_factory=asyncio.Queue)  # client -> pod; None: client sent FIN
    task: asyncio.Task | None = None


class PortForwardSession:
    """One ``kubectl port-forward`` connection to one pod."""

    def __init__(self, ws: web.WebSocketResponse, pod_ip: str, pod_label: str, uid: str):
        self.ws = ws
        self.pod_ip = pod_ip
        self.pod_label = pod_label
        self.uid = uid
        self.codec = spdy.HeaderCodec()
        self.reader = spdy.FrameReader(self.codec)
        self.pairs: dict[str, _Pair] = {}
        self.by_stream: dict[int, tuple[str, str]] = {}  # stream id -> (request id, stream type)
        self.send = MessageSender(ws).send  # one frame at a time on the tunnel, dropped once it is closed

    async def run(self, closing: asyncio.Event) -> None:
        """Serve frames until the client closes the tunnel (or the server shuts down)."""
        closer = asyncio.get_running_loop().create_task(self._close_on(closing))
        try:
            async for message in self.ws:
                if message.type != WSMsgType.BINARY:
                    continue
                for frame in self.reader.feed(message.data):
                    await self._handle(frame)
        except spdy.SpdyError as exc:
            log.warning("port-forward to %s: %s", self.pod_label, exc)
            await self.send(spdy.goaway(0, 1))
        finally:
            closer.cancel()
            for pair in self.pairs.values():
                if pair.task is not None:
                    pair.task.cancel()
            await asyncio.gather(*(p.task for p in self.pairs.values() if p.task), return_exceptions=True)

    async def _close_on(self, closing: asyncio.Event) -> None:
        await closing.wait()
        await self.ws.close()

    async def _handle(self, frame) -> None:
        if isinstance(frame, spdy.DataFrame):
            request, kind = self.by_stream.get(frame.stream_id, (None, None))
            pair = self.pairs.get(request) if request is not None else None
            if pair is None:
                return
            if kind == "data":
                if frame.data:
                    pair.inbound.put_nowait(frame.data)
                if frame.fin:
                    pair.inbound.put_nowait(None)
            return  # the error stream carries nothing from the client (only its FIN)
        if frame.type == spdy.SYN_STREAM:
            await self._open(frame)
        elif frame.type == spdy.RST_STREAM:
            request, _ = self.by_stream.pop(frame.stream_id, (None, None))
            pair = self.pairs.get(request) if request is not None else None
            if pair is not None and pair.task is not None:
                pair.task.cancel()
        elif frame.type == spdy.PING:
            await self.send(spdy.ping(frame.ping_id))
        elif frame.type == spdy.GOAWAY:
            await self.ws.close()
        # SETTINGS, WINDOW_UPDATE, HEADERS: nothing to do here

    async def _open(self, frame: spdy.ControlFrame) -> None:
        headers = {k.lower(): v[0] if v else "" for k, v in frame.headers.items()}
        kind, port_text = headers.get("streamtype", ""), headers.get("port", "")
        request = headers.get("requestid") or port_text
        if kind not in ("error", "data") or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            await self.send(spdy.rst_stream(frame.stream_id, spdy.PROTOCOL_ERROR))
            return
        await self.send(spdy.syn_reply(self.codec, frame.stream_id))
        pair = self.pairs.get(request)
        if pair is None or pair.task is not None and pair.task.done():
            pair = self.pairs[request] = _Pair(int(port_text))
        self.by_stream[frame.stream_id] = (request, kind)
        if kind == "error":
            pair.error_id = frame.stream_id
        else:
            pair.data_id = frame.stream_id
        if pair.error_id is not None and pair.data_id is not None and pair.task is None:
            pair.task = asyncio.get_running_loop().create_task(self._forward(request, pair))

    async def _forward(self, request: str, pair: _Pair) -> None:
        writer = None
        try:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(self.pod_ip, pair.port), CONNECT_TIMEOUT)
            except (OSError, asyncio.TimeoutError) as exc:
                reason = "connect: connection refused" if isinstance(exc, ConnectionRefusedError) else \
                    ("i/o timeout" if isinstance(exc, asyncio.TimeoutError) else str(exc))
                message = (f"error forwarding port {pair.port} to pod {self.pod_label}, uid {self.uid}: "
                           f"failed to connect to localhost:{pair.port} inside namespace: "
                           f"dial tcp4 {self.pod_ip}:{pair.port}: {reason}")
                await self.send(spdy.data(pair.error_id, message.encode()))
                await self.send(spdy.data(pair.data_id, b"", fin=True))
                return
            upstream = asyncio.get_running_loop().create_task(self._to_pod(pair, writer))
            try:
                while True:
                    chunk = await reader.read(CHUNK)
                    if not chunk:
                        break
                    await self.send(spdy.data(pair.data_id, chunk))
            except OSError:
                pass
            await self.send(spdy.data(pair.data_id, b"", fin=True))
            upstream.cancel()
        finally:
            if writer is not None:
                writer.close()
            await self.send(spdy.data(pair.error_id, b"", fin=True))
            if self.pairs.get(request) is pair:
                del self.pairs[request]

    @staticmethod
    async def _to_pod(pair: _Pair, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                chunk = await pair.inbound.get()
                if chunk is None:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(chunk)
                await writer.drain()
        except OSError:
            pass


async def serve(request: web.Request, pod: dict, closing: asyncio.Event) -> web.WebSocketResponse:
    """Upgrade ``request`` and forward the pod's ports until the client goes away."""
    ws = web.WebSocketResponse(protocols=(PROTOCOL,), autoping=True, max_msg_size=0)
    await ws.prepare(request)
    meta = pod["metadata"]
    session = PortForwardSession(ws, pod["status"]["podIP"], f"{meta['name']}_{meta['namespace']}", meta["uid"])
    try:
        await session.run(closing)
    except Exception:  # the upgrade is done: an error can only be logged, not answered
        log.exception("port-forward to %s failed", session.pod_label)
    finally:
        await ws.close()
    return ws
