"""Bearer-token authentication: the admin token of the sandbox kubeconfig, or an EKS-style
token (``k8s-aws-v1.`` + a presigned STS GetCallerIdentity URL naming the cluster).

EKS tokens are checked for shape and age (15 minutes, as on EKS), not by calling
STS: the sandbox trusts whoever holds credentials for the local AWS.
"""

from __future__ import annotations

import base64
import hmac
import secrets
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from eks_hub_runbook.paths import write_file

EKS_TOKEN_PREFIX = "k8s-aws-v1."
EKS_TOKEN_MAX_AGE = timedelta(minutes=15)
ANONYMOUS_PATHS = ("/healthz", "/livez", "/readyz", "/version")


def load_or_create_admin_token(state_dir: Path) -> str:
    """The admin token, generated once per state folder and kept in a 0600 file."""
    path = state_dir / "admin-token"
    if path.exists():
        return path.read_text().strip()
    token = secrets.token_urlsafe(32)
    write_file(path, token, private=True)
    return token


def eks_token_cluster(token: str, now: datetime | None = None) -> str | None:
    """The cluster name a well-formed, unexpired EKS token was made for; None otherwise."""
    if not token.startswith(EKS_TOKEN_PREFIX):
        return None
    payload = token[len(EKS_TOKEN_PREFIX):]
    try:
        url = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    parsed = urlparse(url)
    query = {k.lower(): v[0] for k, v in parse_qs(parsed.query).items()}
    if parsed.scheme not in ("http", "https") or query.get("action") != "GetCallerIdentity":
        return None
    if "x-k8s-aws-id" not in query.get("x-amz-signedheaders", "").split(";") or not query.get("x-amz-signature"):
        return None
    try:
        signed_at = datetime.strptime(query["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    except (KeyError, ValueError):
        return None
    if (now or datetime.now(timezone.utc)) - signed_at > EKS_TOKEN_MAX_AGE:
        return None
    return query.get("x-k8s-aws-id") or "eks"


class Authenticator:
    """Decides whether a request's ``Authorization`` header is accepted."""

    def __init__(self, admin_token: str):
        self.admin_token = admin_token

    def accepts(self, authorization: str | None, path: str) -> bool:
        if path.rstrip("/") in ANONYMOUS_PATHS:
            return True
        if not authorization or not authorization.lower().startswith("bearer "):
            return False
        token = authorization[7:].strip()
        if hmac.compare_digest(token, self.admin_token):
            return True
        return eks_token_cluster(token) is not None
