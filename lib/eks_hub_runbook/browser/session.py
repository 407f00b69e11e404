"""The public entry point, :func:`walkthrough`: one Chromium, one browser context per user.

Checks the arguments and the profile before any browser starts, launches Debian's
Chromium once, then walks each user's :class:`.journey.Journey` in a fresh context (the
"private window" of the walkthrough) and gathers the results in a :class:`.Walkthrough`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from ..errors import RunbookError
from .chromium import VIEWPORT, chromium_path, launch
from .journey import Journey
from .network import is_loopback, loopback_only
from .profile_list import TIME_SLICING_PROFILE, find_profile, profiles
from .results import Profile, UserJourney, Walkthrough
from .terminal import DEFAULT_DIRECTORIES

DEFAULT_USERS = ("user-1", "user-2")
# Dummy login accepts any password; this is a form value, not a secret.
DUMMY_PASSWORD = "workshop"


def walkthrough(
    hub_url: str,
    out_dir: str | Path,
    *,
    users: Sequence[str] = DEFAULT_USERS,
    auth: str = "dummy",
    password: str | Callable[[str], str] = DUMMY_PASSWORD,
    profile: str = TIME_SLICING_PROFILE,
    expected_profiles: Sequence[str] | None = None,
    directories: Sequence[str] = DEFAULT_DIRECTORIES,
    spawn_timeout: float = 600.0,
    step_timeout: float = 60.0,
    restart_running: bool = True,
    ignore_https_errors: bool = False,
    offline: bool | None = None,
    executable: str | Path | None = None,
) -> Walkthrough:
    """Walk the workshop journey in headless Chromium for each user, one browser context each.

    Args:
        hub_url: the hub's public URL (sandbox: the proxy on 127.0.0.1; EKS: https://<domain>/
            or the port-forward URL).
        out_dir: folder for the screenshots (the run record's folder); created if missing.
        users: who walks the journey, in order, each in a fresh browser context.
        auth: ``dummy`` (the hub's login form) or ``cognito`` / ``oauth`` (the identity
            provider's login page; the sandbox's local OpenID Connect provider).
        password: typed into password fields (dummy accepts any; never recorded), or a function
            user -> password (e.g. ``gpu_sharing.passwords(params)`` for Cognito users).
        profile: slug or display name of the profile to start (default: time-slicing).
        expected_profiles: display names the server-options page must show; default: every
            profile in the hub's values (``singleuser.profileList``).
        directories: folders the terminal lists (the EFS home and shared folder); relative
            names are under the parent of ``$HOME`` (``/home`` in a user pod).
        spawn_timeout: seconds to wait on the progress page (a cold GPU node takes minutes).
        step_timeout: seconds any other page or element may take.
        restart_running: if a user's server is already running, stop it from the hub's home
            page first so the server-options page can be shown (otherwise fail).
        ignore_https_errors: accept a self-signed certificate (deployment types 2/3 in tests;
            pass ``verify is not True`` when a notebook has a ``requests``-style ``verify``).
        offline: block requests to non-loopback hosts (e.g. the provider page's CDN stylesheet);
            default: when the hub itself is on loopback.
        executable: Chromium binary; default Debian's ``/usr/bin/chromium``.

    Returns:
        A :class:`Walkthrough`: ``.screenshots`` is ``[(step, path), ...]``; ``.rows()`` /
        ``.table()`` one row per user and step; ``.journeys[i].listing`` the folders listed.

    Raises:
        BrowserError (a HubError): a step failed; the message names the user and the step,
        and ``.screenshot`` is the failing page's PNG in ``out_dir``.
        RunbookError: Chromium or Playwright is missing, or the profile is unknown.
    """
    if auth not in ("dummy", "cognito", "oauth"):
        raise RunbookError(f"auth {auth!r} is not one of dummy, cognito, oauth")
    if not users:
        raise RunbookError("walkthrough needs at least one user")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:  # pragma: no cover - a broken environment
        raise RunbookError("the playwright package is missing; run `make setup`") from exc

    offered = profiles()
    chosen = find_profile(profile, offered) if offered else Profile(profile, profile)
    expected = list(expected_profiles) if expected_profiles is not None else [p.display_name for p in offered]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    chromium = chromium_path(executable)
    if offline is None:
        offline = is_loopback(hub_url)

    journeys: list[UserJourney] = []
    with sync_playwright() as pw:
        browser = launch(pw, chromium)
        try:
            for index, user in enumerate(users, start=1):
                context = browser.new_context(viewport=VIEWPORT, ignore_https_errors=ignore_https_errors)
                try:
                    if offline:
                        context.route("**/*", loopback_only)
                    secret = password(user) if callable(password) else password
                    journey = Journey(
                        context, hub_url=hub_url, user=user, password=secret, auth=auth, profile=chosen,
                        expected=expected, directories=directories, out_dir=out, index=index,
                        spawn_timeout=spawn_timeout, step_timeout=step_timeout, restart_running=restart_running,
                    )
                    journeys.append(journey.run())
                finally:
                    context.close()
        finally:
            browser.close()
    return Walkthrough(hub_url=hub_url, auth=auth, profile=chosen, journeys=journeys, out_dir=out)
