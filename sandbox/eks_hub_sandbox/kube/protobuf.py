"""Decoding of Kubernetes protobuf request bodies for the few kinds kubectl's typed
``create`` commands send that way (``kubectl create namespace|configmap|secret|
serviceaccount``). Everything else must be sent as JSON or YAML (``kubectl apply``
always is); other protobuf bodies get 415 Unsupported Media Type.

Format: the ``k8s\\0`` magic, then a ``runtime.Unknown`` message (typeMeta=1, raw=2)
whose ``raw`` is the object's message with the field numbers of Kubernetes'
``generated.proto`` files.
"""

from __future__ import annotations

import base64

from .errors import ApiError

MAGIC = b"k8s\x00"


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes):
    """(field number, wire type, value) triples of one message."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            length, pos = _varint(data, pos)
            value, pos = data[pos:pos + length], pos + length
        elif wire == 1:
            value, pos = data[pos:pos + 8], pos + 8
        elif wire == 5:
            value, pos = data[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, wire, value


def _map_entry(data: bytes) -> tuple[str, bytes]:
    key, value = "", b""
    for number, _, raw in _fields(data):
        if number == 1:
            key = raw.decode()
        elif number == 2:
            value = raw
    return key, value


def _object_meta(data: bytes) -> dict:
    meta: dict = {}
    for number, _, raw in _fields(data):
        if number in (1, 2, 3):
            meta[{1: "name", 2: "generateName", 3: "namespace"}[number]] = raw.decode()
        elif number in (11, 12):
            key, value = _map_entry(raw)
            meta.setdefault("labels" if number == 11 else "annotations", {})[key] = value.decode()
        elif number == 14:
            meta.setdefault("finalizers", []).append(raw.decode())
    return meta


def _decode_kind(kind: str, data: bytes) -> dict:
    obj: dict = {}
    for number, _, raw in _fields(data):
        if number == 1:
            obj["metadata"] = _object_meta(raw)
        elif kind == "Namespace" and number == 2:
            finalizers = [value.decode() for n, _, value in _fields(raw) if n == 1]
            obj["spec"] = {"finalizers": finalizers} if finalizers else {}
        elif kind == "ConfigMap" and number in (2, 3):
            key, value = _map_entry(raw)
            if number == 2:
                obj.setdefault("data", {})[key] = value.decode()
            else:
                obj.setdefault("binaryData", {})[key] = base64.b64encode(value).decode()
        elif kind in ("ConfigMap", "Secret") and number == (4 if kind == "ConfigMap" else 5):
            obj["immutable"] = bool(raw)
        elif kind == "Secret" and number in (2, 4):
            key, value = _map_entry(raw)
            if number == 2:
                obj.setdefault("data", {})[key] = base64.b64encode(value).decode()
            else:
                obj.setdefault("stringData", {})[key] = value.decode()
        elif kind == "Secret" and number == 3:
            obj["type"] = raw.decode()
        elif kind == "ServiceAccount" and number == 4:
            obj["automountServiceAccountToken"] = bool(raw)
    return obj


SUPPORTED = {"Namespace", "ConfigMap", "Secret", "ServiceAccount"}


def decode(body: bytes) -> dict:
    """A protobuf-encoded object as a JSON-style dict (415 for kinds not supported here)."""
    if not body.startswith(MAGIC):
        raise ApiError(400, "BadRequest", "protobuf body without the k8s magic prefix")
    api_version = kind = ""
    raw = b""
    for number, _, value in _fields(body[len(MAGIC):]):
        if number == 1:
            for field, _, part in _fields(value):
                if field == 1:
                    api_version = part.decode()
                elif field == 2:
                    kind = part.decode()
        elif number == 2:
            raw = value
    if kind not in SUPPORTED:
        raise ApiError(415, "UnsupportedMediaType", f"the sandbox API server accepts protobuf bodies only for "
                       f"{', '.join(sorted(SUPPORTED))}; send {kind or 'this object'} as JSON or YAML "
                       f"(for example with kubectl apply -f)")
    return {"apiVersion": api_version, "kind": kind, **_decode_kind(kind, raw)}
