"""The Kubernetes WebSocket channel protocol (``v4.channel.k8s.io``, ``v5.channel.k8s.io``).

Every binary message is one channel byte followed by that channel's data: 0 stdin,
1 stdout, 2 stderr, 3 error (a ``metav1.Status`` as JSON, written once when the command
ends), 4 resize (JSON ``{"Width": w, "Height": h}``). v5 adds a close message: channel
255 with one byte naming the channel the sender will not write to any more (kubectl
sends ``[255, 0]`` at the end of its stdin).
"""

from __future__ import annotations

import json

STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4
CLOSE = 255
V5, V4 = "v5.channel.k8s.io", "v4.channel.k8s.io"
PROTOCOLS = (V5, V4)


class ProtocolError(ValueError):
    """A message that does not follow the channel protocol."""


def encode(channel: int, data: bytes = b"") -> bytes:
    """One message on ``channel``."""
    if not 0 <= channel <= 255:
        raise ProtocolError(f"channel {channel} out of range")
    return bytes([channel]) + data


def decode(message: bytes) -> tuple[int, bytes]:
    """``(channel, data)`` of one message."""
    if not message:
        raise ProtocolError("empty message: no channel byte")
    return message[0], bytes(message[1:])


def close_message(channel: int) -> bytes:
    """The v5 message saying ``channel`` is closed by its writer."""
    return encode(CLOSE, bytes([channel]))


def closed_channel(channel: int, data: bytes) -> int | None:
    """The channel a decoded v5 close message names, or None when it is not one."""
    if channel != CLOSE:
        return None
    if len(data) != 1:
        raise ProtocolError("a close message names exactly one channel")
    return data[0]


def parse_resize(data: bytes) -> tuple[int, int]:
    """``(width, height)`` of a resize message."""
    try:
        size = json.loads(data)
        return int(size["Width"]), int(size["Height"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ProtocolError(f"bad resize message: {data!r}") from exc


def exit_status(exit_code: int, command: list[str]) -> dict:
    """The Status written on the error channel when a command has ended."""
    if exit_code == 0:
        return {"metadata": {}, "status": "Success"}
    return {"metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: error executing command "
                       f"[{' '.join(command)}], exit code {exit_code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(exit_code)}]}}


def failure_status(message: str, reason: str = "InternalError", code: int = 500) -> dict:
    """A Status for a command that could not run at all."""
    return {"metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code}


def status_message(status: dict) -> bytes:
    """The error-channel message carrying ``status``."""
    return encode(ERROR, json.dumps(status, separators=(",", ":")).encode())
