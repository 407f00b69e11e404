"""The workshop journey in a real browser: login, server options, spawn, JupyterLab, terminal.

Drives Debian's headless Chromium (``/usr/bin/chromium``, installed by ``make browser``;
never a downloaded browser build) with Playwright through ``executable_path``. Each
user walks the journey the blueprint documents, in its own browser context (the
"private window" of the walkthrough):

1. ``login``: the hub's login page; dummy form, or "Sign in with ..." then the OpenID
   Connect provider's page (the sandbox's stand-in for Cognito's hosted UI / Keycloak);
2. ``server-options``: the profile list; every expected display name must be there;
   the chosen profile (time-slicing by default) is picked and started;
3. ``spawn-pending``: the progress page, until the hub redirects to the server;
4. ``jupyterlab``: the JupyterLab launcher;
5. ``terminal``: a terminal runs ``ls`` on the home and shared folders; the output is
   read from the terminal's own websocket (what xterm.js paints on its canvas).

A PNG screenshot of every page lands in ``out_dir``; :class:`Walkthrough` lists them as
``(step, path)`` pairs for a notebook to show. A failing step raises :class:`BrowserError`
(a ``HubError``) naming the user and the step, with a screenshot of the failing page saved
beside the others.

Usage (a notebook cell)::

    from eks_hub_runbook import browser
    result = browser.walkthrough(hub_url, record_dir / "screenshots")
    result.table()          # one row per user and step
    result.screenshots      # [("user-1 login", Path(...)), ...]

Modules:

- ``session``: :func:`walkthrough`, one Chromium and one browser context per user
- ``journey``: one user's steps through the hub's pages (Playwright)
- ``results``: what it returns and raises (:class:`Walkthrough`, :class:`BrowserError`...)
- ``profile_list``: the profiles the options page must list (z2jh ``profileList``)
- ``chromium``: finding Debian's Chromium, its flags, starting it
- ``network``: loopback-only requests when the hub is local
- ``terminal``: the listing command typed in the terminal and how its output is parsed
- ``png``: a screenshot's size from its PNG header
"""

from __future__ import annotations

from .chromium import CHROMIUM, CHROMIUM_FLAGS, VIEWPORT, chromium_path
from .journey import STEPS
from .png import png_size
from .profile_list import BASE_VALUES, TIME_SLICING_PROFILE, profiles
from .results import BrowserError, Profile, StepResult, UserJourney, Walkthrough
from .session import DEFAULT_USERS, DUMMY_PASSWORD, walkthrough
from .terminal import DEFAULT_DIRECTORIES, POD_HOME_PARENT, parse_listing

__all__ = [
    "BASE_VALUES",
    "CHROMIUM",
    "CHROMIUM_FLAGS",
    "DEFAULT_DIRECTORIES",
    "DEFAULT_USERS",
    "DUMMY_PASSWORD",
    "POD_HOME_PARENT",
    "STEPS",
    "TIME_SLICING_PROFILE",
    "VIEWPORT",
    "BrowserError",
    "Profile",
    "StepResult",
    "UserJourney",
    "Walkthrough",
    "chromium_path",
    "parse_listing",
    "png_size",
    "profiles",
    "walkthrough",
]
