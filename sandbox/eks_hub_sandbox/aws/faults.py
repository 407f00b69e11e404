"""Fault injection for the sandbox's local AWS: make the next N matching calls fail.

Real AWS throttles (``Throttling``, ``RequestLimitExceeded``), is briefly unavailable
(``ServiceUnavailable``, 503) and is eventually consistent (a ``NotFound`` right after a
create). moto never is; this WSGI middleware, in front of everything else, makes it so on
request, so the product's retries can be tested against the same server it deploys to.

Admin endpoint (answered only to loopback clients; it needs no AWS signature):

- ``POST /_sandbox/faults`` with a JSON fault: ``service`` (boto3's name: ``ec2``, ``acm``,
  ``eks``, ``cognito-idp``...), ``operation`` (``DescribeVpcs``...), ``code``
  (``Throttling``...), optional ``status`` (HTTP, default 400), ``count`` (default 1),
  ``message``, ``after`` (an operation of the same service: the fault arms only once such a
  call has succeeded, e.g. ``ImportCertificate`` for a ``DescribeCertificate`` NotFound) and
  ``region``. Answers 201 with the fault as stored (its ``id``).
- ``GET /_sandbox/faults``: every fault with its ``hits`` and ``remaining``.
- ``DELETE /_sandbox/faults`` (all) or ``DELETE /_sandbox/faults/<id>`` (one).

A call is matched by its SigV4 credential scope (service signing name, region) and its
operation: the ``Action`` parameter (query and EC2 protocols), the ``X-Amz-Target`` header
(JSON protocol) or the operation whose ``requestUri`` and method match (REST protocols),
read from botocore's own service model. The error is written in the service's protocol
(XML for EC2/IAM/ELBv2/STS, JSON with ``__type`` for ACM/Cognito/KMS/..., the
``x-amzn-ErrorType`` header for EKS/EFS), so botocore parses the code exactly as from AWS
and classifies it as it would: throttling codes and 5xx statuses are retried.

:class:`FaultClient` is the admin endpoint's client (tests use it).
"""

from __future__ import annotations

import functools
import io
import json
import re
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

ADMIN_PATH = "/_sandbox/faults"
LOOPBACK_CLIENTS = ("127.0.0.1", "::1", "::ffff:127.0.0.1")
SUPPORTED_PROTOCOLS = ("query", "ec2", "json", "rest-json", "rest-xml")
_CREDENTIAL = re.compile(r"Credential=[^/,\s]+/\d{8}/([a-z0-9-]+)/([a-z0-9-]+)/aws4_request")
_REASONS = {400: "Bad Request", 403: "Forbidden", 404: "Not Found", 409: "Conflict", 429: "Too Many Requests",
            500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}
# What AWS says with these codes (used when a fault gives no message).
_MESSAGES = {
    "Throttling": "Rate exceeded",
    "ThrottlingException": "Rate exceeded",
    "RequestLimitExceeded": "Request limit exceeded.",
    "ServiceUnavailable": "Service is unavailable. Please try again later.",
    "ServiceUnavailableException": "Service is unavailable. Please try again later.",
    "InternalFailure": "An internal error occurred.",
}


class FaultError(ValueError):
    """A fault definition the injector cannot honour; the message names the field and the fix."""


@functools.lru_cache(maxsize=64)
def service_model(service: str) -> Any:
    """botocore's model of ``service`` (boto3's client name); FaultError if botocore has none."""
    from botocore.exceptions import UnknownServiceError

    try:
        return _botocore_session().get_service_model(service)
    except UnknownServiceError:
        raise FaultError(f"service {service!r} is not a boto3 service name (e.g. ec2, acm, eks, cognito-idp)") from None


@functools.lru_cache(maxsize=1)
def _botocore_session() -> Any:
    import botocore.session

    return botocore.session.get_session()


@functools.lru_cache(maxsize=64)
def _rest_routes(service: str) -> tuple[tuple[str, re.Pattern, tuple[str, ...], int, str], ...]:
    """(method, path pattern, required query keys, specificity, operation) for a REST service."""
    model = service_model(service)
    routes = []
    for name in model.operation_names:
        http = model.operation_model(name).http
        uri = http.get("requestUri", "/")
        path, _, query = uri.partition("?")
        pattern = re.sub(r"\\\{[^}]+\\\+\\\}", ".+", re.escape(path))
        pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", pattern)
        keys = tuple(part.split("=")[0] for part in query.split("&") if part)
        literal = len(re.sub(r"\{[^}]+\}", "", path))
        routes.append((http.get("method", "POST"), re.compile(f"^{pattern}/?$"), keys, literal, name))
    routes.sort(key=lambda route: (-route[3], -len(route[2])))  # most specific first
    return tuple(routes)


@dataclass
class Fault:
    """One injected failure: the next ``count`` calls of ``service``/``operation`` fail."""

    service: str
    operation: str
    code: str
    status: int = 400
    count: int = 1
    message: str = ""
    after: str = ""
    region: str = ""
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    hits: int = 0
    armed: bool = True

    @property
    def remaining(self) -> int:
        """Calls still to fail."""
        return max(0, self.count - self.hits)

    @property
    def signing_name(self) -> str:
        """The service as SigV4 credential scopes name it (``elasticloadbalancing`` for elbv2...)."""
        return service_model(self.service).signing_name

    def to_dict(self) -> dict[str, Any]:
        """The fault as the admin endpoint shows it."""
        return {**asdict(self), "remaining": self.remaining}

    @classmethod
    def from_request(cls, document: Any) -> "Fault":
        """Validate an admin request's JSON document into a fault (FaultError says what is wrong)."""
        if not isinstance(document, dict):
            raise FaultError("the body must be a JSON object with service, operation and code")
        unknown = set(document) - {"service", "operation", "code", "status", "count", "message", "after", "region"}
        if unknown:
            raise FaultError(f"unknown field(s) {sorted(unknown)}; allowed: service, operation, code, status, count, "
                             "message, after, region")
        for name in ("service", "operation", "code"):
            if not isinstance(document.get(name), str) or not document[name]:
                raise FaultError(f"field {name!r} is required (a non-empty string)")
        status, count = document.get("status", 400), document.get("count", 1)
        if not isinstance(status, int) or not 400 <= status <= 599:
            raise FaultError(f"field 'status' must be an HTTP error status 400-599, not {status!r}")
        if not isinstance(count, int) or count < 1:
            raise FaultError(f"field 'count' must be a positive integer, not {count!r}")
        model = service_model(document["service"])
        if model.resolved_protocol not in SUPPORTED_PROTOCOLS:
            raise FaultError(f"service {document['service']!r} speaks {model.resolved_protocol}; "
                             f"faults support {', '.join(SUPPORTED_PROTOCOLS)}")
        for name in ("operation", "after"):
            value = document.get(name) or ""
            if value and value not in model.operation_names:
                raise FaultError(f"field {name!r}: {value!r} is not an operation of {document['service']} "
                                 f"(operations are named as in the API reference, e.g. {model.operation_names[0]})")
        return cls(service=document["service"], operation=document["operation"], code=document["code"],
                   status=status, count=count, message=str(document.get("message") or ""),
                   after=str(document.get("after") or ""), region=str(document.get("region") or ""),
                   armed=not document.get("after"))


@dataclass(frozen=True)
class Call:
    """What a request is: the service's signing name, its region and the operation."""

    signing_name: str
    region: str
    operation: str


def error_body(fault: Fault, request_id: str) -> tuple[list[tuple[str, str]], bytes]:
    """Headers and body of ``fault``'s error, in its service's protocol."""
    model = service_model(fault.service)
    protocol = model.resolved_protocol
    message = fault.message or _MESSAGES.get(fault.code, f"{fault.code} (injected by the sandbox)")
    headers = [("x-amzn-RequestId", request_id)]
    if protocol in ("query", "rest-xml"):
        body = (f'<ErrorResponse><Error><Type>{"Sender" if fault.status < 500 else "Receiver"}</Type>'
                f"<Code>{_xml(fault.code)}</Code><Message>{_xml(message)}</Message></Error>"
                f"<RequestId>{request_id}</RequestId></ErrorResponse>")
        return [*headers, ("Content-Type", "text/xml")], body.encode()
    if protocol == "ec2":
        body = (f'<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>{_xml(fault.code)}</Code>'
                f"<Message>{_xml(message)}</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>")
        return [*headers, ("Content-Type", "text/xml;charset=UTF-8")], body.encode()
    if protocol == "json":
        content_type = f"application/x-amz-json-{model.metadata.get('jsonVersion', '1.1')}"
        extra = [("x-amzn-query-error", f"{fault.code};{'Sender' if fault.status < 500 else 'Receiver'}")] \
            if "awsQueryCompatible" in model.metadata else []
        body = json.dumps({"__type": fault.code, "message": message}).encode()
        return [*headers, *extra, ("Content-Type", content_type)], body
    # rest-json
    body = json.dumps({"message": message}).encode()
    return [*headers, ("x-amzn-ErrorType", fault.code), ("Content-Type", "application/json")], body


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _json_reply(start_response: Callable, status: int, document: Any) -> list[bytes]:
    body = json.dumps(document).encode()
    start_response(f"{status} {_REASONS.get(status, 'OK' if status < 300 else 'Error')}",
                   [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


class FaultInjector:
    """The middleware: answers the admin endpoint, fails matching calls, forwards the rest to ``app``."""

    def __init__(self, app: Callable):
        self.app = app
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    # ---- the faults --------------------------------------------------------------------

    def add(self, fault: Fault) -> Fault:
        """Register a fault (validated by :meth:`Fault.from_request`)."""
        with self._lock:
            self._faults.append(fault)
        return fault

    def faults(self) -> list[Fault]:
        """Every fault, oldest first."""
        with self._lock:
            return list(self._faults)

    def clear(self, fault_id: str = "") -> int:
        """Remove one fault (or all); returns how many were removed."""
        with self._lock:
            before = len(self._faults)
            self._faults = [f for f in self._faults if fault_id and f.id != fault_id]
            return before - len(self._faults)

    def _live(self) -> list[Fault]:
        with self._lock:
            return [f for f in self._faults if f.remaining]

    # ---- WSGI --------------------------------------------------------------------------

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == ADMIN_PATH or path.startswith(ADMIN_PATH + "/"):
            return self._admin(environ, start_response, path[len(ADMIN_PATH):].strip("/"))
        live = self._live()
        if not live:
            return self.app(environ, start_response)
        call = self._identify(environ, {f.service for f in live})
        if call is None:
            return self.app(environ, start_response)
        fault = self._take(call, live)
        if fault is not None:
            request_id = str(uuid.uuid4())
            headers, body = error_body(fault, request_id)
            start_response(f"{fault.status} {_REASONS.get(fault.status, 'Error')}",
                           [*headers, ("Content-Length", str(len(body)))])
            return [body]
        waiting = [f for f in live if not f.armed and f.after == call.operation
                   and f.signing_name == call.signing_name and f.region in ("", call.region)]
        if not waiting:
            return self.app(environ, start_response)

        def arming_start_response(status: str, headers: list, exc_info: Any = None) -> Callable:
            if status.startswith("2"):
                with self._lock:
                    for f in waiting:
                        f.armed = True
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        return self.app(environ, arming_start_response)

    def _take(self, call: Call, live: list[Fault]) -> Fault | None:
        """The first armed fault matching ``call``, its hit counted (None if there is none)."""
        with self._lock:
            for fault in live:
                if (fault.armed and fault.remaining and fault.operation == call.operation
                        and fault.signing_name == call.signing_name and fault.region in ("", call.region)):
                    fault.hits += 1
                    return fault
        return None

    def _identify(self, environ: dict, services: set[str]) -> Call | None:
        """The call a request makes, if it is for one of ``services`` (boto3 names)."""
        scope = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", "")) or \
            _CREDENTIAL.search("Credential=" + unquote(parse_qs(environ.get("QUERY_STRING", "")).get(
                "X-Amz-Credential", [""])[0]))
        if not scope:
            return None
        region, signing_name = scope.groups()
        candidates = [s for s in services if service_model(s).signing_name == signing_name]
        for service in candidates:
            operation = self._operation(environ, service)
            if operation:
                return Call(signing_name, region, operation)
        return None

    def _operation(self, environ: dict, service: str) -> str:
        protocol = service_model(service).resolved_protocol
        if protocol in ("query", "ec2"):
            values = parse_qs(environ.get("QUERY_STRING", ""))
            if "Action" not in values and "form-urlencoded" in environ.get("CONTENT_TYPE", ""):
                values = parse_qs(_body(environ).decode("utf-8", "replace"))
            return values.get("Action", [""])[0]
        if protocol == "json":
            return environ.get("HTTP_X_AMZ_TARGET", "").rpartition(".")[2]
        method = environ.get("REQUEST_METHOD", "GET")
        raw_uri = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO", "/")
        path = raw_uri.partition("?")[0]  # still percent-encoded: an ARN label keeps its slashes as %2F
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        for route_method, pattern, keys, _, operation in _rest_routes(service):
            if route_method == method and pattern.match(path) and all(k in query for k in keys):
                return operation
        return ""

    # ---- the admin endpoint ------------------------------------------------------------

    def _admin(self, environ: dict, start_response: Callable, fault_id: str) -> list[bytes]:
        if environ.get("REMOTE_ADDR") not in LOOPBACK_CLIENTS:
            return _json_reply(start_response, 403, {"error": "the fault endpoint answers loopback clients only"})
        method = environ.get("REQUEST_METHOD")
        if method == "GET" and not fault_id:
            return _json_reply(start_response, 200, {"faults": [f.to_dict() for f in self.faults()]})
        if method == "DELETE":
            removed = self.clear(fault_id)
            if fault_id and not removed:
                return _json_reply(start_response, 404, {"error": f"no fault with id {fault_id!r}"})
            return _json_reply(start_response, 200, {"removed": removed})
        if method == "POST" and not fault_id:
            try:
                fault = Fault.from_request(json.loads(_body(environ) or b"null"))
            except ValueError as exc:  # FaultError, or a body that is not JSON
                return _json_reply(start_response, 400, {"error": str(exc)})
            return _json_reply(start_response, 201, {"fault": self.add(fault).to_dict()})
        return _json_reply(start_response, 405, {"error": f"{method} {ADMIN_PATH}/{fault_id} is not supported; "
                                                          "use POST, GET or DELETE on " + ADMIN_PATH})


def _body(environ: dict) -> bytes:
    """The request body, read once and put back for whoever reads it next."""
    raw = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0) or 0)
    environ["wsgi.input"] = io.BytesIO(raw)
    return raw


# ---- the client ---------------------------------------------------------------------------


class FaultClient:
    """The admin endpoint of the local AWS at ``endpoint_url``."""

    def __init__(self, endpoint_url: str, timeout: float = 10):
        self.url = endpoint_url.rstrip("/") + ADMIN_PATH
        self.timeout = timeout

    def _send(self, method: str, path: str = "", document: Any = None) -> dict[str, Any]:
        data = json.dumps(document).encode() if document is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as reply:
                return json.loads(reply.read())
        except urllib.error.HTTPError as exc:
            detail = json.loads(exc.read() or b"{}").get("error", exc.reason)
            raise FaultError(f"{method} {ADMIN_PATH}{path}: {exc.code} {detail}") from None

    def inject(self, service: str, operation: str, code: str, status: int = 400, count: int = 1,
               message: str = "", after: str = "", region: str = "") -> dict[str, Any]:
        """Make the next ``count`` ``service``/``operation`` calls fail with ``code`` and ``status``."""
        document = {"service": service, "operation": operation, "code": code, "status": status, "count": count}
        document.update({k: v for k, v in (("message", message), ("after", after), ("region", region)) if v})
        return self._send("POST", "", document)["fault"]

    def list(self) -> list[dict[str, Any]]:
        """Every fault with its hits and remaining count."""
        return self._send("GET")["faults"]

    def get(self, fault_id: str) -> dict[str, Any]:
        """One fault by id (FaultError if there is none)."""
        for fault in self.list():
            if fault["id"] == fault_id:
                return fault
        raise FaultError(f"no fault with id {fault_id!r}")

    def clear(self, fault_id: str = "") -> int:
        """Remove one fault, or all of them; returns how many were removed."""
        return self._send("DELETE", f"/{fault_id}" if fault_id else "")["removed"]
