"""Cognito users for the demo (deployment type 2).

The Cognito user pool signs users in by email address. For the GPU-sharing demo the
runbook creates its demo users (``user-1@<parent of the hub domain>``...) with a
random permanent password, without sending invitation emails, and logs in with it
through the hosted UI. Passwords live in this process only: they are registered for
redaction and never printed, glued or written.
"""

from __future__ import annotations

import secrets
import string

from ..params import DeploymentParameters
from ..records.redact import register_secret
from .consistency import read_after_create
from .session import client


def _password() -> str:
    """A password that satisfies Cognito's default policy (upper, lower, digit, symbol, length >= 8)."""
    alphabet = string.ascii_letters + string.digits
    body = "".join(secrets.choice(alphabet) for _ in range(20))
    return f"Rb{body}7!"


def ensure_users(params: DeploymentParameters, user_pool_id: str, users: list[str]) -> dict[str, str]:
    """Create (or reset) the demo users in the pool; returns ``{email: password}`` for logging in.

    Idempotent: an existing user just gets a new permanent password. A user just created
    may not be visible yet (Cognito is eventually consistent): setting its password is retried
    briefly on ``UserNotFoundException``.
    """
    idp = client("cognito-idp", params.target, params.region)
    passwords = {}
    for user in users:
        email = params.login_name(user)
        password = _password()
        register_secret(password)
        try:
            idp.admin_create_user(
                UserPoolId=user_pool_id, Username=email, MessageAction="SUPPRESS",
                UserAttributes=[{"Name": "email", "Value": email}, {"Name": "email_verified", "Value": "true"}],
            )
        except idp.exceptions.UsernameExistsException:
            pass
        read_after_create(
            lambda: idp.admin_set_user_password(UserPoolId=user_pool_id, Username=email, Password=password,
                                                Permanent=True),
            "Cognito AdminSetUserPassword", ["UserNotFoundException"])
        passwords[email] = password
    return passwords


def delete_users(params: DeploymentParameters, user_pool_id: str, users: list[str]) -> list[str]:
    """Delete demo users (the pool itself goes with Terraform's destroy). Returns those deleted."""
    idp = client("cognito-idp", params.target, params.region)
    deleted = []
    for user in users:
        try:
            idp.admin_delete_user(UserPoolId=user_pool_id, Username=params.login_name(user))
            deleted.append(params.login_name(user))
        except (idp.exceptions.UserNotFoundException, idp.exceptions.ResourceNotFoundException):
            continue
    return deleted
