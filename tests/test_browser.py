"""The workshop walkthrough in headless Chromium against the sandbox hub (issue 7).

Debian's chromium (``make browser``) driven by Playwright: login, every profile on the
server-options page, the time-slicing profile started, the progress page, JupyterLab, a
terminal listing the home and shared folders; user-1 then user-2, each in its own browser
context. The entry point's checks that need no browser are tested at the top without marks;
the helpers have their own test_browser_<module>.py files.
"""

from __future__ import annotations

import pytest

from eks_hub_runbook import browser
from eks_hub_runbook import params as runbook_params
from eks_hub_runbook.errors import HubError, RunbookError

ARN = "arn:aws:acm:us-west-2:123456789012:certificate/12345678-1234-1234-1234-123456789012"
sandbox_browser = [pytest.mark.browser, pytest.mark.sandbox, pytest.mark.slow]


# -- the package and the entry point (no browser, no sandbox) ---------------------------------
# The helpers have their own tests: test_browser_{chromium,png,profile_list,results,terminal}.py.

def test_the_package_offers_what_callers_use():
    from eks_hub_runbook.browser import chromium, journey, png, profile_list, results, session, terminal

    assert browser.walkthrough is session.walkthrough
    assert browser.profiles is profile_list.profiles and browser.BASE_VALUES == profile_list.BASE_VALUES
    assert browser.png_size is png.png_size and browser.chromium_path is chromium.chromium_path
    assert browser.parse_listing is terminal.parse_listing and browser.STEPS is journey.STEPS
    assert (browser.BrowserError, browser.Profile, browser.StepResult, browser.UserJourney, browser.Walkthrough) == (
        results.BrowserError, results.Profile, results.StepResult, results.UserJourney, results.Walkthrough)
    assert browser.STEPS == ("login", "server-options", "spawn-pending", "jupyterlab", "terminal")
    assert browser.DEFAULT_USERS == ("user-1", "user-2") and browser.TIME_SLICING_PROFILE == "gpu-time-slicing"
    assert browser.DEFAULT_DIRECTORIES == ("jovyan", "shared") and browser.POD_HOME_PARENT == "/home"
    assert all(hasattr(browser, name) for name in browser.__all__)


def test_unknown_profile_is_refused_before_a_browser_starts(tmp_path):
    with pytest.raises(RunbookError, match="not one of the hub's profiles"):
        browser.walkthrough("http://127.0.0.1:9", tmp_path, profile="no-such-profile")


def test_bad_arguments_are_refused_before_a_browser_starts(tmp_path):
    with pytest.raises(RunbookError, match="auth 'saml' is not one of dummy, cognito, oauth"):
        browser.walkthrough("http://127.0.0.1:9", tmp_path, auth="saml")
    with pytest.raises(RunbookError, match="at least one user"):
        browser.walkthrough("http://127.0.0.1:9", tmp_path, users=[])
    assert list(tmp_path.iterdir()) == []


def test_a_missing_chromium_is_refused_before_a_browser_starts(tmp_path):
    with pytest.raises(RunbookError, match="make browser"):
        browser.walkthrough("http://127.0.0.1:9", tmp_path / "shots", executable=tmp_path / "no-chromium")


# -- against the sandbox hub ------------------------------------------------------------------

def _stop_servers(url: str, users, password: str = "any") -> None:
    from eks_hub_runbook.hub import HubClient

    for user in users:
        try:
            hub = HubClient(url)
            hub.login(user, password)
            if hub.server() is not None:
                hub.stop()
        except HubError:
            continue


@pytest.fixture(scope="module")
def dummy_hub(full_sandbox, platform_outputs):
    """The platform installed in the sandbox with dummy login (deployment type 1)."""
    from eks_hub_runbook.platform import install
    from eks_hub_sandbox import hub as sandbox_hub

    install.install(runbook_params.resolve(), platform_outputs)
    yield sandbox_hub.url()
    _stop_servers(sandbox_hub.url(), browser.DEFAULT_USERS)
    sandbox_hub.stop()


@pytest.mark.browser
@pytest.mark.sandbox
@pytest.mark.slow
def test_a_missing_profile_fails_the_options_step_with_a_screenshot(dummy_hub, tmp_path):
    expected = [p.display_name for p in browser.profiles()] + ["Quantum (QPU)"]
    with pytest.raises(browser.BrowserError) as failure:
        browser.walkthrough(dummy_hub, tmp_path, users=["user-1"], expected_profiles=expected)
    error = failure.value
    assert isinstance(error, HubError)
    assert (error.user, error.step) == ("user-1", "server-options")
    assert "Quantum (QPU)" in str(error) and "server-options" in str(error)
    assert error.screenshot is not None and error.screenshot.name.endswith("-FAILED.png")
    assert browser.png_size(error.screenshot) == (1024, 640)


@pytest.mark.browser
@pytest.mark.sandbox
@pytest.mark.slow
def test_two_users_walk_from_login_to_a_terminal(dummy_hub, tmp_path):
    result = browser.walkthrough(dummy_hub, tmp_path / "screenshots")

    assert [j.user for j in result.journeys] == ["user-1", "user-2"]
    every_profile = [p.display_name for p in browser.profiles()]
    for journey in result.journeys:
        assert journey.profiles_seen == every_profile
        steps = [s.step for s in journey.steps if s.step != "stop-running-server"]
        assert steps == list(browser.STEPS)
        assert journey.server_url.endswith(f"/user/{journey.user}/")
        assert set(journey.listing) == {"/home/jovyan", "/home/shared"}
        # the walkthrough's storage check in the same terminal: both folders are EFS mounts
        assert all(journey.mounts.get(folder, "").endswith(".efs.us-west-2.amazonaws.com:/")
                   for folder in journey.listing), journey.terminal_output
        assert journey.user not in journey.listing["/home/shared"], "the shared folder must not expose homes"
    assert result.profile.slug == "gpu-time-slicing"

    # every page is a small, valid PNG in the record folder, in journey order
    assert len(result.screenshots) >= 2 * len(browser.STEPS)
    for caption, path in result.screenshots:
        assert path.parent == tmp_path / "screenshots" and path.suffix == ".png"
        assert browser.png_size(path) == (1024, 640), caption
        assert path.stat().st_size < 500_000
    assert result.screenshots[0][0] == "user-1 login"
    assert len(result.rows()) == len(result.screenshots)
    assert result.as_record()["users"][1]["user"] == "user-2"


@pytest.fixture(scope="module")
def oauth_hub(full_sandbox, platform_outputs):
    """The platform with Keycloak-style login (type 3) through the sandbox's OpenID Connect provider."""
    from eks_hub_runbook.platform import install
    from eks_hub_sandbox import hub as sandbox_hub, oidc

    p = runbook_params.resolve(auth="oauth", domain="hub.example.com", certificate_arn=ARN,
                               oauth_domain="keycloak.example.com", oauth_client_id="jupyterhub",
                               allowed_users="user-1")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RUNBOOK_OAUTH_CLIENT_SECRET", "oauth-client-secret-for-browser-tests")
        install.install(p, platform_outputs)
    yield sandbox_hub.url()
    _stop_servers(sandbox_hub.url(), ["user-1"])
    sandbox_hub.stop()
    oidc.stop()


@pytest.mark.browser
@pytest.mark.sandbox
@pytest.mark.slow
def test_oauth_login_goes_through_the_provider_page(oauth_hub, tmp_path):
    result = browser.walkthrough(oauth_hub, tmp_path, users=["user-1"], auth="oauth")
    steps = [s.step for s in result.journeys[0].steps if s.step != "stop-running-server"]
    assert steps[:2] == ["login", "identity-provider"]
    assert steps[2:] == list(browser.STEPS[1:])
    assert "127.0.0.1" in result.journeys[0].steps[1].detail  # the provider's own page
