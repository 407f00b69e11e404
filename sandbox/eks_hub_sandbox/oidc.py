"""The sandbox's OpenID Connect provider: a stand-in for the Cognito hosted UI and Keycloak.

It is ``oidc-provider-mock`` (a real authorization-code + OIDC implementation on authlib)
with three changes made here:

- the hub is a *registered* client: its id, secret and exact callback URL are checked,
  as Cognito and Keycloak check them (the mock would accept any client otherwise);
- anyone who signs in gets the claims a user directory would give them (``email``,
  ``preferred_username``, ``username``), so Cognito's ``email`` and Keycloak's
  ``preferred_username`` username claims both work; JupyterHub's allow rule decides who
  gets in, exactly as on AWS;
- Werkzeug's interactive debugger, which the mock enables, is removed.

It runs as the sandbox service ``oidc`` on 127.0.0.1. The client secret reaches it in a
0600 file, never on the command line.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from eks_hub_runbook.paths import write_file
from eks_hub_sandbox.paths import sandbox_dir
from eks_hub_runbook.platform.values import LoginEndpoints
from . import services

SERVICE = "oidc"
USER_DOMAIN = "example.com"


def url() -> str:
    """Base URL (issuer) of the sandbox provider."""
    return f"http://{services.LOOPBACK}:{services.reserved_port(SERVICE)}"


def endpoints() -> LoginEndpoints:
    """The provider's authorize, token and userinfo endpoints."""
    base = url()
    return LoginEndpoints(f"{base}/oauth2/authorize", f"{base}/oauth2/token", f"{base}/userinfo")


def claims_for(subject: str) -> dict:
    """What the directory says about a user who signs in as ``subject`` (a name or an email)."""
    name = subject.split("@", 1)[0]
    email = subject if "@" in subject else f"{subject}@{USER_DOMAIN}"
    return {"email": email, "email_verified": True, "preferred_username": name, "username": name}


def start(client_id: str, client_secret: str, redirect_uri: str) -> services.ServiceStatus:
    """Start (or reuse) the provider with the hub registered as its only client."""
    config = sandbox_dir() / "oidc-client.json"
    write_file(config, json.dumps({"client_id": client_id, "client_secret": client_secret, "redirect_uri": redirect_uri}),
               private=True)
    current = services.status(SERVICE)
    if current.running:
        services.stop(SERVICE)  # the client registration may have changed: restart with it
    port = services.reserved_port(SERVICE)
    spec = services.ServiceSpec(
        name=SERVICE,
        argv=services.python_module("eks_hub_sandbox.oidc", "--port", str(port), "--client-file", str(config)),
        port=port,
        env={"AUTHLIB_INSECURE_TRANSPORT": "1"},  # plain http on loopback only
    )
    return services.start(spec)


def stop() -> bool:
    return services.stop(SERVICE)


def make_app(client_id: str, client_secret: str, redirect_uri: str):
    """The provider's WSGI app with the hub registered and directory claims for every user."""
    import flask
    import oidc_provider_mock
    from oidc_provider_mock._storage import Client, ClientAllowAny, User, storage

    app = oidc_provider_mock.app(require_client_registration=True)
    app.debug = False
    app.wsgi_app = getattr(app.wsgi_app, "app", app.wsgi_app)  # drop the interactive debugger

    @app.before_request
    def known_user():
        if flask.request.method == "POST" and flask.request.path == "/oauth2/authorize":
            subject = flask.request.form.get("sub")
            if subject and storage.get_user(subject) is None:
                storage.store_user(User(sub=subject, claims=claims_for(subject)))

    with app.test_request_context("/"):
        app.preprocess_request()  # binds the provider's storage to this context
        storage.store_client(Client(
            id=client_id,
            secret=client_secret,
            redirect_uris=[redirect_uri],
            allowed_scopes=Client.SCOPES_SUPPORTED,
            token_endpoint_auth_method=ClientAllowAny(),
        ))
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Sandbox OpenID Connect provider (stands in for Cognito / Keycloak).")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--client-file", type=Path, required=True)
    args = parser.parse_args(argv)
    client = json.loads(args.client_file.read_text())
    from werkzeug.serving import make_server

    app = make_app(client["client_id"], client["client_secret"], client["redirect_uri"])
    make_server(services.LOOPBACK, args.port, app, threaded=True).serve_forever()


if __name__ == "__main__":
    main()
