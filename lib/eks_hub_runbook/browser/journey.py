"""One user's journey through the hub's pages, driven with Playwright in one browser context.

The steps, in order (:data:`STEPS`; ``identity-provider`` between the first two for OAuth
logins, ``stop-running-server`` when the user's server was already running):

1. ``login``: the hub's login page; dummy form, or "Sign in with ..." then the OpenID
   Connect provider's page (the sandbox's stand-in for Cognito's hosted UI / Keycloak);
2. ``server-options``: the profile list; every expected display name must be there;
   the chosen profile is picked and started;
3. ``spawn-pending``: the progress page, until the hub redirects to the server;
4. ``jupyterlab``: the JupyterLab launcher;
5. ``terminal``: a terminal runs ``ls`` on the home and shared folders (see :mod:`.terminal`).

Each step is timed and leaves a screenshot; a failing step raises :class:`.BrowserError`
with a screenshot of the failing page.
"""

from __future__ import annotations

import re
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence
from urllib.parse import urljoin, urlsplit

from ..errors import HubError, RunbookError
from .results import BrowserError, Profile, StepResult, UserJourney
from .terminal import (STORAGE_COMMAND, command_finished, command_output, display_path, is_terminal_websocket,
                       listing_command, marked, new_marker, parse_df, parse_listing, stdout_text)

if TYPE_CHECKING:  # playwright is imported lazily: importing this module must stay cheap
    from playwright.sync_api import BrowserContext, Page

STEPS = ("login", "server-options", "spawn-pending", "jupyterlab", "terminal")


class Journey:
    """One user's walk through the hub in one browser context; :meth:`run` walks it."""

    def __init__(self, context: "BrowserContext", *, hub_url: str, user: str, password: str, auth: str,
                 profile: Profile, expected: Sequence[str], directories: Sequence[str], out_dir: Path,
                 index: int, spawn_timeout: float, step_timeout: float, restart_running: bool):
        self.context = context
        self.hub_url = hub_url.rstrip("/") + "/"
        self.user = user
        self.password = password
        self.auth = auth
        self.expected = list(expected)
        self.directories = list(directories)
        self.out_dir = out_dir
        self.index = index
        self.spawn_timeout = spawn_timeout
        self.step_timeout = step_timeout
        self.restart_running = restart_running
        self.result = UserJourney(user=user, profile=profile)
        self.page: Page = context.new_page()
        self.page.set_default_timeout(step_timeout * 1000)
        self.page.set_default_navigation_timeout(step_timeout * 1000)
        self._terminals: list[list[str]] = []  # stdout chunks, one list per terminal websocket
        self.page.on("websocket", self._watch_websocket)

    # screenshots and step bookkeeping

    def _shot_path(self, step: str, failed: bool = False) -> Path:
        n = len(self.result.steps) + 1
        suffix = "-FAILED" if failed else ""
        return self.out_dir / f"{self.index}-{self.user}-{n:02d}-{step}{suffix}.png"

    def _screenshot(self, path: Path) -> Path | None:
        try:
            self.page.screenshot(path=str(path), timeout=15_000)
            return path
        except Exception:  # noqa: BLE001 - a dead page must not hide the original error
            return None

    @contextmanager
    def step(self, name: str, record: bool = True) -> Iterator[dict[str, str]]:
        """Run one step: time it, screenshot the page at the end, turn any failure into BrowserError.

        With ``record=False`` only failures are turned into errors (with a screenshot); the
        step itself leaves no screenshot (e.g. submitting a form whose result the next step shows).
        """
        from playwright.sync_api import Error as PlaywrightError

        started = time.monotonic()
        note: dict[str, str] = {"detail": ""}
        try:
            yield note
        except BrowserError:
            raise
        except (PlaywrightError, RunbookError, TimeoutError) as exc:
            shot = self._screenshot(self._shot_path(name, failed=True))
            problem = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BrowserError(self.user, name, f"{problem} (page: {self._url()})", shot) from exc
        if not record:
            return
        shot = self._screenshot(self._shot_path(name))
        if shot is None:
            raise BrowserError(self.user, name, "could not take a screenshot of the page", None)
        self.result.steps.append(StepResult(self.user, name, time.monotonic() - started, shot, note["detail"]))

    def _url(self) -> str:
        try:
            return self.page.url
        except Exception:  # noqa: BLE001
            return "?"

    def _path(self) -> str:
        return urlsplit(self._url()).path

    # websocket reader for the terminal

    def _watch_websocket(self, ws) -> None:
        if not is_terminal_websocket(ws.url):
            return
        chunks: list[str] = []
        self._terminals.append(chunks)

        def received(payload: str | bytes) -> None:
            text = stdout_text(payload)
            if text is not None:
                chunks.append(text)

        ws.on("framereceived", received)

    # the steps

    def run(self) -> UserJourney:
        """Every step in order (the provider's page only for OAuth logins); the user's results."""
        self.login()
        if self.auth != "dummy":
            self.identity_provider()
        self.submit_login()
        self.server_options()
        self.spawn_pending()
        self.jupyterlab()
        self.terminal()
        return self.result

    def login(self) -> None:
        """The hub's login page: the dummy form filled in, or the "Sign in with ..." button."""
        page = self.page
        with self.step("login") as note:
            page.goto(urljoin(self.hub_url, "hub/login"), wait_until="domcontentloaded")
            if self.auth == "dummy":
                page.locator("#username_input").fill(self.user)
                self._fill_secret(page.locator("#password_input"))
                note["detail"] = "dummy login form"
            elif self._url().startswith(self.hub_url):
                page.locator("a[href*='oauth_login']").first.wait_for()
                note["detail"] = "sign in with the identity provider"
            else:
                note["detail"] = "the hub redirected straight to the identity provider (auto_login)"

    def identity_provider(self) -> None:
        """The OpenID Connect provider's page (Cognito hosted UI, Keycloak, or the sandbox's mock)."""
        page = self.page
        with self.step("identity-provider") as note:
            if self._url().startswith(self.hub_url):
                page.locator("a[href*='oauth_login']").first.click()
                page.wait_for_url(lambda url: not url.startswith(self.hub_url), wait_until="domcontentloaded")
            provider = urlsplit(self._url()).netloc
            if page.locator(f"button[name='sub'][value='{self.user}']").count():
                note["detail"] = f"{provider}: predefined user"
            elif page.locator("input[name='sub']").count():  # the sandbox's oidc-provider-mock
                page.locator("input[name='sub']").fill(self.user)
                note["detail"] = f"{provider}: subject {self.user}"
            elif page.locator("input[name='username']").count():  # Cognito hosted UI / Keycloak
                page.locator("input[name='username']").first.fill(self.user)
                self._fill_secret(page.locator("input[name='password']").first)
                note["detail"] = f"{provider}: username and password"
            else:
                raise RunbookError(f"no login form found on the identity provider's page ({provider})")

    def _fill_secret(self, field) -> None:
        """Type the password; a failure is reported without Playwright's call log (it would echo the value)."""
        from playwright.sync_api import Error as PlaywrightError

        try:
            field.fill(self.password)
        except PlaywrightError:
            raise RunbookError("could not type into the password field") from None

    def submit_login(self) -> None:
        """Submit the login form; the hub must accept the user (it then shows options or the server)."""
        page = self.page
        with self.step("sign-in", record=False):
            if self.auth == "dummy":
                with page.expect_navigation(wait_until="domcontentloaded"):
                    page.locator("#login_submit").click()
            else:
                predefined = page.locator(f"button[name='sub'][value='{self.user}']")
                if predefined.count():
                    predefined.first.click()
                elif page.locator("input[name='sub']").count():
                    page.locator("button[type='submit']:not([value='deny'])").first.click()
                else:
                    page.locator("[type='submit']").first.click()
                page.wait_for_url(lambda url: url.startswith(self.hub_url), wait_until="domcontentloaded")
            page.wait_for_load_state("domcontentloaded")
            self._fail_if_login_refused()

    def _fail_if_login_refused(self) -> None:
        path = self._path()
        if path.rstrip("/").endswith("/hub/login") or "/oauth_callback" in path:
            error = self.page.locator(".login_error, .alert-danger")
            message = error.first.inner_text().strip() if error.count() else ""
            raise HubError(f"the hub refused the login of {self.user}{': ' + message if message else ''} "
                           "(is the user in allowed_users?)")

    def server_options(self) -> None:
        """The profile list: every expected name shown, the chosen profile picked."""
        page = self.page
        if "/hub/spawn" not in self._path() or "/hub/spawn-pending" in self._path():
            self._stop_running_server()
        with self.step("server-options") as note:
            if "/hub/spawn" not in self._path():
                page.goto(urljoin(self.hub_url, "hub/spawn"), wait_until="domcontentloaded")
            page.locator("#spawn_form").wait_for()
            names = [t.strip() for t in page.locator("#spawn_form label.js-profile-label h3").all_inner_texts()]
            if not names:  # a hub with a plain options form: any radio labels
                names = [t.strip() for t in page.locator("#spawn_form label").all_inner_texts()]
            self.result.profiles_seen = names
            missing = [n for n in self.expected if n not in names]
            if missing:
                raise RunbookError(f"the server-options page lacks {len(missing)} profile(s): {', '.join(missing)} "
                                   f"(it shows: {', '.join(names) or 'nothing'})")
            radio = page.locator(f"#spawn_form input[type=radio][name=profile][value='{self.result.profile.slug}']")
            if not radio.count():
                raise RunbookError(f"no option for profile '{self.result.profile.slug}' on the server-options page")
            page.locator(f"label[for='profile-item-{self.result.profile.slug}']").first.click()
            if not radio.first.is_checked():
                radio.first.check()
            note["detail"] = f"{len(names)} profiles; picked {self.result.profile.display_name}"

    def _stop_running_server(self) -> None:
        """The user already has a server: stop it from the hub home page, so the options page shows."""
        if not self.restart_running:
            raise RunbookError("the user's server is already running, so the server-options page cannot be shown; "
                               "stop it first or pass restart_running=True")
        page = self.page
        with self.step("stop-running-server") as note:
            page.goto(urljoin(self.hub_url, "hub/home"), wait_until="domcontentloaded")
            page.wait_for_function("window._jupyterhub_page_loaded === true")  # buttons are wired up
            stop = page.locator("#stop")
            if stop.count():
                stop.click()
                # the home page hides #stop and shows #start once the hub reports the server stopped
                page.locator("#stop").wait_for(state="hidden", timeout=self.spawn_timeout * 1000)
            page.goto(urljoin(self.hub_url, "hub/spawn"), wait_until="domcontentloaded")
            self.result.restarted = True
            note["detail"] = "a server was already running; stopped it from the hub home page"

    def spawn_pending(self) -> None:
        """Start the server; the progress page (event log open) is shown until the hub redirects."""
        page = self.page
        # the hub's name for the user, not the login's: Cognito's are user-1@<domain>
        lab = re.compile(r"/user/[^/]+/")
        started = time.monotonic()
        with self.step("spawn-pending") as note:
            page.locator("#spawn_form [type=submit]").first.click()
            page.wait_for_url(lambda url: "/hub/spawn-pending/" in url or bool(lab.search(url)),
                              wait_until="domcontentloaded")
            if "/spawn-pending/" in self._url():
                note["detail"] = self._show_progress()
            else:
                note["detail"] = "the server started before the progress page showed"
        # keep reading the progress page until the hub redirects to the server or reports failure
        deadline = started + self.spawn_timeout
        message = ""
        while not lab.search(self._path()):
            if time.monotonic() > deadline:
                with self.step("spawn-timeout"):
                    raise HubError(f"the server was not ready after {self.spawn_timeout:.0f} s "
                                   f"(last progress: {message or 'none'})")
            try:
                message = page.locator("#progress-message").inner_text(timeout=1_000).strip() or message
                failed = page.locator("#progress-bar.bg-danger").count() > 0
            except Exception:  # noqa: BLE001 - the page is navigating to the server
                failed = False
            if failed:
                with self.step("spawn-failed"):
                    raise HubError(f"the server failed to start: {message or 'no message'}")
            page.wait_for_timeout(500)
        self.result.steps[-1].seconds = time.monotonic() - started

    def _show_progress(self) -> str:
        """Open the progress page's event log and wait (briefly) for the first event."""
        page = self.page
        try:
            page.wait_for_function("window._jupyterhub_page_loaded === true", timeout=10_000)
            page.locator("#progress-details summary").click(timeout=5_000)
            page.wait_for_function("document.querySelectorAll('.progress-log-event').length > 0", timeout=5_000)
            return "progress: " + page.locator("#progress-message").inner_text(timeout=1_000).strip()
        except Exception:  # noqa: BLE001 - a fast spawn redirects away from this page; that is fine
            return "progress page shown"

    def jupyterlab(self) -> None:
        """JupyterLab's launcher, with its Terminal card and no error dialog."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        page = self.page
        with self.step("jupyterlab") as note:
            if "/lab" not in self._path():
                page.wait_for_url(re.compile(r"/lab"), wait_until="domcontentloaded")
            page.locator("#jp-main-dock-panel").wait_for()
            # JupyterLab removes its splash screen once the workspace layout is restored
            page.locator("#jupyterlab-splash").wait_for(state="detached")
            launcher = page.locator(".jp-Launcher").first
            try:
                launcher.wait_for(timeout=3_000)
            except PlaywrightTimeout:
                # JupyterLab restored an earlier layout without a launcher: open one, as a user would
                add = page.locator("#jp-main-dock-panel .lm-TabBar-addButton:visible")
                if add.count():
                    add.first.click()
                else:
                    page.keyboard.press("Control+Shift+L")  # JupyterLab's "New Launcher" shortcut
                launcher.wait_for()
                note["detail"] = "restored layout; opened a new launcher. "
            page.locator(".jp-LauncherCard", has_text="Terminal").first.wait_for()
            self._fail_on_dialog()
            self.result.server_url = self._url().split("/lab", 1)[0] + "/"
            note["detail"] += urlsplit(self.result.server_url).path

    def _fail_on_dialog(self) -> None:
        """An error dialog over JupyterLab (e.g. "Could not find path") is what a user would see: fail."""
        dialog = self.page.locator(".jp-Dialog")
        if dialog.count():
            title = dialog.first.get_attribute("aria-label") or ""
            body = dialog.first.locator(".jp-Dialog-body").inner_text(timeout=2_000).strip() if dialog.first.locator(
                ".jp-Dialog-body").count() else ""
            raise HubError(f"JupyterLab shows a dialog: {title or 'untitled'}{': ' + body if body else ''}")

    def terminal(self) -> None:
        """A new terminal lists the folders, then runs ``df -h``; both are read from its websocket."""
        page = self.page
        with self.step("terminal") as note:
            known = len(self._terminals)
            page.locator(".jp-LauncherCard", has_text="Terminal").first.click()
            self._wait_for(lambda: len(self._terminals) > known, "the new terminal did not connect")
            stdout = self._terminals[known]
            term = page.locator(".jp-Terminal:visible .xterm").first
            term.wait_for()
            # the shell is ready once it has printed its prompt over the websocket
            self._wait_for(lambda: "".join(stdout).strip() != "", "the terminal showed no prompt")
            body = self._type(term, stdout, lambda mark: listing_command(self.directories, mark))
            self.result.listing = {display_path(d): entries
                                   for d, entries in parse_listing(body, self.directories).items()}
            storage = self._type(term, stdout, lambda mark: marked(STORAGE_COMMAND, mark))
            self.result.terminal_output = f"{body}\n$ {STORAGE_COMMAND}\n{storage}"
            self.result.mounts = {path: fs for path, fs in parse_df(storage).items()
                                  if path in self.result.listing}
            page.wait_for_timeout(300)  # let xterm paint the output before the screenshot
            note["detail"] = "; ".join(f"{d}: {len(e)} entries" + (f" on {self.result.mounts[d]}"
                                                                    if d in self.result.mounts else "")
                                       for d, e in self.result.listing.items())

    def _type(self, term, stdout: list[str], command_for) -> str:
        """Type one marked command in the terminal; what it printed."""
        mark = new_marker()
        term.click()
        self.page.keyboard.type(command_for(mark))
        self.page.keyboard.press("Enter")
        self._wait_for(lambda: command_finished("".join(stdout), mark), "the terminal command did not finish")
        return command_output("".join(stdout), mark)

    def _wait_for(self, condition, problem: str) -> None:
        deadline = time.monotonic() + self.step_timeout
        while not condition():
            if time.monotonic() > deadline:
                raise RunbookError(f"{problem} within {self.step_timeout:.0f} s")
            self.page.wait_for_timeout(200)

