"""SPDY/3.1 framing, the part kubectl's port-forward uses (pure: bytes in, frames out).

Frames (draft-mbelshe-httpbis-spdy-00 / SPDY/3.1): a control frame is ``1 | version(15)
| type(16) | flags(8) | length(24) | payload``; a data frame is ``0 | stream-id(31) |
flags(8) | length(24) | data``. Header blocks are ``count(32)`` then ``len(32) name
len(32) value`` pairs, zlib-compressed with the protocol's fixed dictionary, one
compression context per direction for the whole connection (each block sync-flushed).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 0x01
# RST_STREAM status codes
PROTOCOL_ERROR, INVALID_STREAM, REFUSED_STREAM, CANCEL, INTERNAL_ERROR = 1, 2, 3, 5, 6

# The header compression dictionary of SPDY/3 (spec section 2.6.10.1): length-prefixed
# common header names and values, then a run of common status lines, dates and types.
_DICTIONARY_WORDS = (
    "options,head,post,put,delete,trace,accept,accept-charset,accept-encoding,accept-language,"
    "accept-ranges,age,allow,authorization,cache-control,connection,content-base,"
    "content-encoding,content-language,content-length,content-location,content-md5,content-range,"
    "content-type,date,etag,expect,expires,from,host,if-match,if-modified-since,if-none-match,"
    "if-range,if-unmodified-since,last-modified,location,max-forwards,pragma,proxy-authenticate,"
    "proxy-authorization,range,referer,retry-after,server,te,trailer,transfer-encoding,upgrade,"
    "user-agent,vary,via,warning,www-authenticate,method,get,status,200 OK,version,HTTP/1.1,url,"
    "public,set-cookie,keep-alive,origin")
_DICTIONARY_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized"
    "403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable"
    "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT"
    "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
    "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.")


def _dictionary() -> bytes:
    words = _DICTIONARY_WORDS.split(",")
    return b"".join(struct.pack(">I", len(w)) + w.encode() for w in words) + _DICTIONARY_TAIL.encode()


DICTIONARY = _dictionary()


class SpdyError(ValueError):
    """Bytes that are not valid SPDY/3 framing."""


@dataclass
class DataFrame:
    """A data frame: bytes of one stream (``fin``: the sender's last)."""

    stream_id: int
    data: bytes
    fin: bool = False


@dataclass
class ControlFrame:
    """A control frame, with the fields of its type decoded."""

    type: int
    flags: int
    payload: bytes
    # decoded fields, by type
    stream_id: int = 0
    headers: dict[str, list[str]] = field(default_factory=dict)
    status: int = 0
    ping_id: int = 0
    delta: int = 0

    @property
    def fin(self) -> bool:
        """Whether the frame half-closes its stream."""
        return bool(self.flags & FLAG_FIN)


class HeaderCodec:
    """Header blocks of one connection: a compression context for each direction."""

    def __init__(self) -> None:
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)
        self._deflate = zlib.compressobj(zlib.Z_BEST_COMPRESSION, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY,
                                         zdict=DICTIONARY)

    def decode(self, block: bytes) -> dict[str, list[str]]:
        """Headers of a received (compressed) block; a name's NUL-separated values as a list."""
        try:
            raw = self._inflate.decompress(block)
        except zlib.error as exc:
            raise SpdyError(f"bad header block: {exc}") from exc
        return parse_header_block(raw)

    def encode(self, headers: dict[str, list[str] | str]) -> bytes:
        """A compressed block for ``headers`` (names lowercased, as SPDY/3 requires)."""
        raw = build_header_block(headers)
        return self._deflate.compress(raw) + self._deflate.flush(zlib.Z_SYNC_FLUSH)


def build_header_block(headers: dict[str, list[str] | str]) -> bytes:
    """The uncompressed block of ``headers``."""
    out = [struct.pack(">I", len(headers))]
    for name, value in headers.items():
        values = [value] if isinstance(value, str) else list(value)
        name_bytes, value_bytes = name.lower().encode(), "\0".join(values).encode()
        out += [struct.pack(">I", len(name_bytes)), name_bytes, struct.pack(">I", len(value_bytes)), value_bytes]
    return b"".join(out)


def parse_header_block(raw: bytes) -> dict[str, list[str]]:
    """Headers of an uncompressed block."""
    try:
        (count,), pos = struct.unpack_from(">I", raw), 4
        headers: dict[str, list[str]] = {}
        for _ in range(count):
            (length,) = struct.unpack_from(">I", raw, pos)
            name = raw[pos + 4:pos + 4 + length].decode()
            pos += 4 + length
            (length,) = struct.unpack_from(">I", raw, pos)
            value = raw[pos + 4:pos + 4 + length].decode()
            pos += 4 + length
            headers.setdefault(name, []).extend(value.split("\0"))
    except (struct.error, UnicodeDecodeError) as exc:
        raise SpdyError(f"bad header block: {exc}") from exc
    if pos != len(raw):
        raise SpdyError("bad header block: trailing bytes")
    return headers


class FrameReader:
    """Splits a byte stream into frames (feed it whatever arrives; frames come out whole)."""

    def __init__(self, codec: HeaderCodec) -> None:
        self.codec = codec
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[DataFrame | ControlFrame]:
        """Frames completed by ``data``."""
        self._buffer += data
        frames = []
        while len(self._buffer) >= 8:
            length = int.from_bytes(self._buffer[5:8], "big")
            if len(self._buffer) < 8 + length:
                break
            head, payload = bytes(self._buffer[:8]), bytes(self._buffer[8:8 + length])
            del self._buffer[:8 + length]
            frames.append(self._frame(head, payload))
        return frames

    def _frame(self, head: bytes, payload: bytes) -> DataFrame | ControlFrame:
        first, flags = struct.unpack_from(">I", head)[0], head[4]
        if not first & 0x80000000:
            return DataFrame(first & 0x7FFFFFFF, payload, bool(flags & FLAG_FIN))
        version, type_ = (first >> 16) & 0x7FFF, first & 0xFFFF
        if version != VERSION:
            raise SpdyError(f"unsupported SPDY version {version}")
        frame = ControlFrame(type_, flags, payload)
        try:
            if type_ == SYN_STREAM:
                frame.stream_id = struct.unpack_from(">I", payload)[0] & 0x7FFFFFFF
                frame.headers = self.codec.decode(payload[10:])
            elif type_ in (SYN_REPLY, HEADERS):
                frame.stream_id = struct.unpack_from(">I", payload)[0] & 0x7FFFFFFF
                frame.headers = self.codec.decode(payload[4:])
            elif type_ == RST_STREAM:
                stream_id, frame.status = struct.unpack_from(">II", payload)
                frame.stream_id = stream_id & 0x7FFFFFFF
            elif type_ == PING:
                frame.ping_id = struct.unpack_from(">I", payload)[0]
            elif type_ == GOAWAY:
                frame.stream_id = struct.unpack_from(">I", payload)[0] & 0x7FFFFFFF
            elif type_ == WINDOW_UPDATE:
                stream_id, delta = struct.unpack_from(">II", payload)
                frame.stream_id, frame.delta = stream_id & 0x7FFFFFFF, delta & 0x7FFFFFFF
        except struct.error as exc:
            raise SpdyError(f"short control frame of type {type_}") from exc
        return frame


def control(type_: int, payload: bytes, flags: int = 0) -> bytes:
    """A control frame."""
    return struct.pack(">HHI", 0x8000 | VERSION, type_, (flags << 24) | len(payload)) + payload


def data(stream_id: int, payload: bytes = b"", fin: bool = False) -> bytes:
    """A data frame."""
    return struct.pack(">II", stream_id & 0x7FFFFFFF, ((FLAG_FIN if fin else 0) << 24) | len(payload)) + payload


def syn_stream(codec: HeaderCodec, stream_id: int, headers: dict, fin: bool = False) -> bytes:
    """A SYN_STREAM frame (what a client opens a stream with)."""
    payload = struct.pack(">IIBB", stream_id, 0, 0, 0) + codec.encode(headers)
    return control(SYN_STREAM, payload, FLAG_FIN if fin else 0)


def syn_reply(codec: HeaderCodec, stream_id: int, headers: dict | None = None, fin: bool = False) -> bytes:
    """A SYN_REPLY frame accepting a stream."""
    return control(SYN_REPLY, struct.pack(">I", stream_id) + codec.encode(headers or {}), FLAG_FIN if fin else 0)


def rst_stream(stream_id: int, status: int) -> bytes:
    """A RST_STREAM frame."""
    return control(RST_STREAM, struct.pack(">II", stream_id, status))


def ping(ping_id: int) -> bytes:
    """A PING frame (a server answers a client's PING with the same id)."""
    return control(PING, struct.pack(">I", ping_id))


def goaway(last_stream_id: int, status: int = 0) -> bytes:
    """A GOAWAY frame."""
    return control(GOAWAY, struct.pack(">II", last_stream_id, status))
