"""The JupyterHub client and the sandbox's hub release / OIDC service on a cluster of their own
(no local AWS: one core node, an in-memory hub database): a real JupyterHub (configured from
the values files by the chart translation) behind configurable-http-proxy, both as pods,
logins through the dummy form and the OAuth code flow."""

from __future__ import annotations

import pytest
import requests

from eks_hub_runbook import params as runbook_params
import eks_hub_sandbox as sandbox
from eks_hub_runbook.errors import HubError
from eks_hub_runbook.hub import HubClient
from eks_hub_runbook.platform import install, manifests, values
from eks_hub_sandbox import hub as sandbox_hub, oidc

pytestmark = pytest.mark.slow
ARN = "arn:aws:acm:us-west-2:123456789012:certificate/12345678-1234-1234-1234-123456789012"


def _in_memory(hub_values: dict) -> dict:
    """No EBS here (no local AWS): the hub keeps its database in memory (z2jh ``sqlite-memory``)."""
    hub_values["hub"]["db"] = {"type": "sqlite-memory"}
    return hub_values


@pytest.fixture(scope="module")
def own_cluster(private_cluster):
    """A state folder of its own with a cluster emulator: these hubs never meet the session sandbox."""
    from kubernetes import client

    with private_cluster("hub-client-state") as api:
        client.CoreV1Api(api).create_namespace({"metadata": {"name": "jupyterhub"}})
        yield api


@pytest.fixture(scope="module")
def dummy_hub(own_cluster, terraform_outputs):
    sandbox_hub.start(_in_memory(values.jupyterhub_values(runbook_params.resolve(), terraform_outputs,
                                                          hub_url=sandbox_hub.url())))
    yield sandbox_hub.url()
    sandbox_hub.stop()


@pytest.fixture(scope="module")
def cognito_hub(own_cluster, terraform_outputs):
    """The hub with Cognito login pointed at the local provider; the client secret reaches the
    hub pod from the ``hub-oauth-client`` Secret, as on EKS."""
    p = runbook_params.resolve(auth="cognito", domain="hub.example.com", certificate_arn=ARN,
                               allowed_users="user-1@example.com")
    client_id, secret = terraform_outputs["cognito_client_id"], terraform_outputs["cognito_client_secret"]["value"]
    install.apply_objects(own_cluster, [manifests.oauth_client_secret(p, terraform_outputs)])
    oidc.start(client_id, secret, f"{sandbox_hub.url()}/hub/oauth_callback")
    sandbox_hub.start(_in_memory(values.jupyterhub_values(p, terraform_outputs, hub_url=sandbox_hub.url(),
                                                          endpoints=oidc.endpoints())))
    yield sandbox_hub.url()
    sandbox_hub.stop()
    oidc.stop()


def test_dummy_login_token_and_refusal(dummy_hub):
    hub = HubClient(dummy_hub)
    assert hub.health()["version"] == "5.5.0"
    assert hub.login("user-1", "any password") == "user-1"
    hub.token()
    model = hub.user_model()
    assert model["name"] == "user-1" and model["servers"] == {}
    assert hub._token and hub._token not in repr(hub)  # the token never shows
    with pytest.raises(HubError, match="refused"):
        HubClient(dummy_hub).login("mallory", "x")


def test_api_needs_a_login(dummy_hub):
    with pytest.raises(HubError, match="not logged in"):
        HubClient(dummy_hub).spawn("gpu-time-slicing")


def test_oauth_code_flow_through_the_local_provider(cognito_hub):
    hub = HubClient(cognito_hub)
    assert hub.login("user-1@example.com", "pw") == "user-1@example.com"
    with pytest.raises(HubError, match="refused"):
        HubClient(cognito_hub).login("outsider@example.com", "pw")


def test_provider_checks_the_registered_client(cognito_hub):
    authorize = oidc.endpoints().authorize_url
    wrong_redirect = requests.get(authorize, params={"client_id": "4abcdefghijklmnopqrstuvwx1", "response_type": "code",
                                                     "redirect_uri": "http://127.0.0.1:1/elsewhere", "scope": "openid"})
    unknown_client = requests.get(authorize, params={"client_id": "someone-else", "response_type": "code",
                                                     "redirect_uri": f"{cognito_hub}/hub/oauth_callback", "scope": "openid"})
    assert wrong_redirect.status_code == 400 and unknown_client.status_code == 400
    assert oidc.claims_for("user-1") == {"email": "user-1@example.com", "email_verified": True,
                                         "preferred_username": "user-1", "username": "user-1"}
