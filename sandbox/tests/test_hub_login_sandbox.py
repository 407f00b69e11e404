"""Login matrix in the sandbox: cognito (type 2) and oauth (type 3) logins go through the real
GenericOAuthenticator code flow against the local OpenID Connect provider; a user the allow
rule does not name is refused (there is an allow rule, unlike the blueprint's, whose cognito hub
let nobody in, and it does not let everyone in either)."""

from __future__ import annotations

import pytest

from eks_hub_runbook import params as runbook_params
from eks_hub_runbook.errors import HubError
from eks_hub_runbook.hub import HubClient
from eks_hub_runbook.platform import install
from eks_hub_sandbox import hub as sandbox_hub, oidc

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]
ARN = "arn:aws:acm:us-west-2:123456789012:certificate/12345678-1234-1234-1234-123456789012"
CASES = {
    # Cognito signs users in by email (username_claim email)
    "cognito": ({"allowed_users": "user-1@example.com"}, "user-1@example.com", "user-1@example.com"),
    # Keycloak gives preferred_username
    "oauth": ({"oauth_domain": "keycloak.example.com", "oauth_client_id": "jupyterhub", "allowed_users": "user-1"},
              "user-1", "user-1"),
}


@pytest.fixture(scope="module", params=list(CASES))
def oauth_hub(request, full_sandbox, platform_outputs):
    auth = request.param
    extra, login_as, expected = CASES[auth]
    p = runbook_params.resolve(auth=auth, domain="hub.example.com", certificate_arn=ARN, **extra)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RUNBOOK_OAUTH_CLIENT_SECRET", "oauth-client-secret-for-sandbox-tests")
        install.install(p, platform_outputs)
    yield login_as, expected
    sandbox_hub.stop()
    oidc.stop()


def test_allowed_user_logs_in_through_the_provider(oauth_hub):
    login_as, expected = oauth_hub
    hub = HubClient(sandbox_hub.url())
    assert hub.login(login_as, "a-password") == expected
    hub.token()
    assert hub.user_model()["name"] == expected


def test_user_not_allowed_is_refused(oauth_hub):
    with pytest.raises(HubError, match="refused|not allowed"):
        HubClient(sandbox_hub.url()).login("outsider", "a-password")
