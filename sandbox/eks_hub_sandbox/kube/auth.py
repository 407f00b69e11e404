"""Bearer-token authentication: the admin token of the sandbox kubeconfig, an EKS-style
token (``k8s-aws-v1.`` + a presigned STS GetCallerIdentity URL naming the cluster), or a
service account token the kubelet projected into a pod.

EKS tokens are checked for shape and age (15 minutes, as on EKS), not by calling
STS: the sandbox trusts whoever holds credentials for the local AWS; both are cluster admins.
Service account tokens are bound tokens as the API server issues them (a JWT naming the
namespace, account and pod, signed with the cluster's key, expiring), and what such an
account may do is decided by RBAC (``rbac``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
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


ISSUER = "https://kubernetes.default.svc.cluster.local"
DEFAULT_TOKEN_SECONDS = 3607  # what the kubelet asks for (an hour, plus jitter)
EXTENDED_TOKEN_SECONDS = 365 * 24 * 3600
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class ServiceAccountTokens:
    """Issues and verifies bound service account tokens (HS256 JWTs with the claims a real
    API server puts in them), signed with a key kept in a 0600 file of the state folder."""

    def __init__(self, key: bytes):
        self.key = key

    @classmethod
    def load_or_create(cls, state_dir: Path) -> "ServiceAccountTokens":
        path = state_dir / "service-account-key"
        if not path.exists():
            write_file(path, secrets.token_hex(32), private=True)
        return cls(path.read_text().strip().encode())

    def issue(self, namespace: str, account: str, pod: dict | None = None,
              seconds: int = DEFAULT_TOKEN_SECONDS, audiences: list[str] | None = None,
              now: float | None = None) -> str:
        issued = int(now if now is not None else time.time())
        bound: dict = {"namespace": namespace, "serviceaccount": {"name": account}}
        if seconds == DEFAULT_TOKEN_SECONDS:  # --service-account-extend-token-expiration: a year
            bound["warnafter"] = issued + seconds
            seconds = EXTENDED_TOKEN_SECONDS
        if pod is not None:
            bound["pod"] = {"name": pod["metadata"]["name"], "uid": pod["metadata"].get("uid", "")}
        claims = {"aud": audiences or [ISSUER], "exp": issued + int(seconds), "iat": issued, "nbf": issued,
                  "iss": ISSUER, "sub": f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{account}", "kubernetes.io": bound}
        signing = f"{_b64(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}.{_b64(json.dumps(claims).encode())}"
        return f"{signing}.{_b64(hmac.new(self.key, signing.encode(), hashlib.sha256).digest())}"

    def verify(self, token: str, now: float | None = None) -> dict | None:
        """The claims of a token this cluster signed and that has not expired; None otherwise."""
        parts = token.split(".")
        if len(parts) != 3:
            return None
        expected = hmac.new(self.key, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
        try:
            if not hmac.compare_digest(expected, _unb64(parts[2])):
                return None
            claims = json.loads(_unb64(parts[1]))
        except (ValueError, UnicodeDecodeError):
            return None
        if not isinstance(claims, dict) or claims.get("iss") != ISSUER:
            return None
        if (now if now is not None else time.time()) >= float(claims.get("exp", 0)):
            return None
        return claims


@dataclass(frozen=True)
class Identity:
    """Who made a request: a cluster admin, or a service account (namespace, name)."""

    user: str
    admin: bool = False

    @property
    def service_account(self) -> tuple[str, str] | None:
        if not self.user.startswith(SERVICE_ACCOUNT_PREFIX):
            return None
        namespace, _, name = self.user[len(SERVICE_ACCOUNT_PREFIX):].partition(":")
        return namespace, name


ADMIN = Identity("kubernetes-admin", admin=True)
ANONYMOUS = Identity("system:anonymous")


class Authenticator:
    """Decides who a request's ``Authorization`` header names (None: nobody, 401)."""

    def __init__(self, admin_token: str, tokens: ServiceAccountTokens | None = None):
        self.admin_token = admin_token
        self.tokens = tokens

    def identify(self, authorization: str | None, path: str) -> Identity | None:
        if not authorization or not authorization.lower().startswith("bearer "):
            return ANONYMOUS if path.rstrip("/") in ANONYMOUS_PATHS else None
        token = authorization[7:].strip()
        if hmac.compare_digest(token, self.admin_token) or eks_token_cluster(token) is not None:
            return ADMIN
        claims = self.tokens.verify(token) if self.tokens is not None else None
        if claims is not None:
            return Identity(claims["sub"])
        return ANONYMOUS if path.rstrip("/") in ANONYMOUS_PATHS else None
