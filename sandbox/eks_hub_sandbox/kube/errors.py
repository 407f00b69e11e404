"""API errors with the ``Status`` bodies a real API server returns."""

from __future__ import annotations

from http import HTTPStatus


class ApiError(Exception):
    """An error answered to the client as a ``Status`` object.

    ``reason`` is the machine-readable StatusReason (NotFound, AlreadyExists, Invalid...).
    """

    def __init__(self, code: int, reason: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict:
        body = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def resource_label(group: str, plural: str) -> str:
    return f"{plural}.{group}" if group else plural


def not_found(group: str, plural: str, name: str) -> ApiError:
    label = resource_label(group, plural)
    return ApiError(404, "NotFound", f'{label} "{name}" not found',
                    {"name": name, "group": group, "kind": plural} if group else {"name": name, "kind": plural})


def already_exists(group: str, plural: str, name: str) -> ApiError:
    label = resource_label(group, plural)
    details = {"name": name, "kind": plural}
    if group:
        details["group"] = group
    return ApiError(409, "AlreadyExists", f'{label} "{name}" already exists', details)


def conflict(group: str, plural: str, name: str, why: str) -> ApiError:
    label = resource_label(group, plural)
    details = {"name": name, "kind": plural}
    if group:
        details["group"] = group
    return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {label} "{name}": {why}', details)


def invalid(kind: str, group: str, name: str, causes: list[dict]) -> ApiError:
    """422 Invalid. ``causes`` items have ``field``, ``message`` and ``reason`` (FieldValueInvalid...)."""
    summary = ", ".join(f"{c['field']}: {c['message']}" if c.get("field") else c["message"] for c in causes)
    if len(causes) > 1:
        summary = f"[{summary}]"
    details = {"name": name, "kind": kind, "causes": causes}
    if group:
        details["group"] = group
    return ApiError(422, "Invalid", f'{kind}.{group} "{name}" is invalid: {summary}' if group
                    else f'{kind} "{name}" is invalid: {summary}', details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def method_not_allowed(message: str) -> ApiError:
    return ApiError(405, "MethodNotAllowed", message)


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def forbidden(message: str) -> ApiError:
    return ApiError(403, "Forbidden", message)


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(415, "UnsupportedMediaType", f'the body of the request was in an unknown format - accepted media '
                    f'types include: application/json-patch+json, application/merge-patch+json, '
                    f'application/apply-patch+yaml (got "{content_type}")')


def reason_phrase(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return "Error"
