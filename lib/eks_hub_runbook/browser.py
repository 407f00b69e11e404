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
``(step, path)`` pairs for a notebook to show. A failing step raises :class:`HubError`
naming the user and the step, with a screenshot of the failing page saved beside the
others.

Usage (a notebook cell)::

    from eks_hub_runbook import browser
    result = browser.walkthrough(hub_url, record_dir / "screenshots")
    result.table()          # one row per user and step
    result.screenshots      # [("user-1 login", Path(...)), ...]
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import struct
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence
from urllib.parse import urljoin, urlsplit

from .errors import HubError, RunbookError
from .paths import TERRAFORM_DIR

if TYPE_CHECKING:  # playwright is imported lazily: importing this module must stay cheap
    from playwright.sync_api import BrowserContext, Page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
VIEWPORT = {"width": 1024, "height": 640}
DEFAULT_USERS = ("user-1", "user-2")
TIME_SLICING_PROFILE = "gpu-time-slicing"
# Folders the terminal lists: the user's EFS home and the shared EFS folder. Relative names
# are under the parent of $HOME: /home in a user pod on EKS; in the sandbox the kubelet gives
# each pod its own root folder, so this is the equivalent of `ls /home/jovyan /home/shared`.
DEFAULT_DIRECTORIES = ("jovyan", "shared")
POD_HOME_PARENT = "/home"
# Dummy login accepts any password; this is a form value, not a secret.
DUMMY_PASSWORD = "workshop"
STEPS = ("login", "server-options", "spawn-pending", "jupyterlab", "terminal")
BASE_VALUES = TERRAFORM_DIR / "helm-values" / "jupyterhub" / "base.yaml"

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][A-Za-z0-9]|\x1b[=>]")
_LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1", "[::1]")


class BrowserError(HubError):
    """A step of the browser walkthrough failed.

    ``user`` and ``step`` say where; ``screenshot`` is the PNG of the page at the moment
    of failure (``None`` if the browser could not even take one).
    """

    def __init__(self, user: str, step: str, problem: str, screenshot: Path | None):
        self.user = user
        self.step = step
        self.problem = problem
        self.screenshot = screenshot
        where = f"; screenshot of the page: {screenshot}" if screenshot else ""
        super().__init__(f"browser walkthrough, {user}, step '{step}': {problem}{where}")


@dataclass(frozen=True)
class Profile:
    """One entry of the hub's server-options page."""

    slug: str
    display_name: str


@dataclass
class StepResult:
    """One page of one user's journey."""

    user: str
    step: str
    seconds: float
    screenshot: Path
    detail: str = ""


@dataclass
class UserJourney:
    """Everything one user saw and did."""

    user: str
    profile: Profile
    profiles_seen: list[str] = field(default_factory=list)
    steps: list[StepResult] = field(default_factory=list)
    listing: dict[str, list[str]] = field(default_factory=dict)
    terminal_output: str = ""
    server_url: str = ""
    restarted: bool = False

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.steps)


@dataclass
class Walkthrough:
    """The result of :func:`walkthrough`: one journey per user, screenshots in order."""

    hub_url: str
    auth: str
    profile: Profile
    journeys: list[UserJourney]
    out_dir: Path

    @property
    def screenshots(self) -> list[tuple[str, Path]]:
        """``(step, path)`` for every page, in the order they were taken (``"user-1 login"``...)."""
        return [(f"{s.user} {s.step}", s.screenshot) for j in self.journeys for s in j.steps]

    def rows(self) -> list[dict[str, Any]]:
        """One row per user and step: user, step, seconds, detail, screenshot file name."""
        return [
            {"user": s.user, "step": s.step, "seconds": round(s.seconds, 1), "detail": s.detail,
             "screenshot": s.screenshot.name}
            for j in self.journeys for s in j.steps
        ]

    def table(self):
        """:meth:`rows` as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.rows())

    def listing_rows(self) -> list[dict[str, Any]]:
        """What each user's terminal listed: user, folder, entries."""
        return [
            {"user": j.user, "folder": folder, "entries": ", ".join(entries) or "(empty)"}
            for j in self.journeys for folder, entries in j.listing.items()
        ]

    def as_record(self) -> dict[str, Any]:
        """JSON-serialisable summary for a run record (paths relative to ``out_dir``)."""
        return {
            "hub_url": self.hub_url,
            "auth": self.auth,
            "profile": self.profile.slug,
            "users": [
                {
                    "user": j.user,
                    "profiles_seen": j.profiles_seen,
                    "listing": j.listing,
                    "restarted": j.restarted,
                    "seconds": round(j.seconds, 1),
                    "steps": [{"step": s.step, "seconds": round(s.seconds, 1), "detail": s.detail,
                               "screenshot": s.screenshot.name} for s in j.steps],
                }
                for j in self.journeys
            ],
        }

    def show(self, width: int = 512) -> None:
        """Display every screenshot with its caption (in a notebook)."""
        from IPython.display import HTML, Image, display

        for caption, path in self.screenshots:
            display(HTML(f"<b>{caption}</b>"), Image(filename=str(path), width=width))


# -- profiles ------------------------------------------------------------------------------


def profiles(values_file: Path = BASE_VALUES) -> list[Profile]:
    """The profiles the hub offers, from the z2jh values (``singleuser.profileList``)."""
    import yaml

    try:
        values = yaml.safe_load(Path(values_file).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise RunbookError(f"cannot read the hub's profiles from {values_file}: {exc}") from exc
    items = ((values or {}).get("singleuser") or {}).get("profileList") or []
    return [Profile(p["slug"], p["display_name"]) for p in items]


def _find_profile(wanted: str, offered: Sequence[Profile]) -> Profile:
    for profile in offered:
        if wanted in (profile.slug, profile.display_name):
            return profile
    names = ", ".join(p.slug for p in offered) or "none"
    raise RunbookError(f"profile {wanted!r} is not one of the hub's profiles ({names}); pass a slug or a display name")


# -- chromium --------------------------------------------------------------------------------


def chromium_path(executable: str | Path | None = None) -> Path:
    """Debian's Chromium binary, or a clear error saying how to install it."""
    candidates = [Path(executable)] if executable else [CHROMIUM]
    if not executable:
        found = shutil.which("chromium")
        if found:
            candidates.append(Path(found))
    for path in candidates:
        if path.is_file():
            return path
    raise RunbookError(
        f"Chromium is not installed at {candidates[0]}; run `make browser` "
        "(apt-get install chromium). The walkthrough never downloads a browser build."
    )


def _is_loopback(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host in _LOOPBACK_HOSTS or host.startswith("127.")


# -- PNG helpers ------------------------------------------------------------------------------


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) of a PNG file; raises ValueError if it is not a PNG."""
    head = Path(path).read_bytes()[:24]
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise ValueError(f"{path} is not a PNG image")
    return struct.unpack(">II", head[16:24])


# -- the journey ----------------------------------------------------------------------------


class _Journey:
    """One user's walk through the hub in one browser context."""

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
        if "/terminals/websocket/" not in ws.url:
            return
        chunks: list[str] = []
        self._terminals.append(chunks)

        def received(payload: str | bytes) -> None:
            try:
                message = json.loads(payload)
            except (TypeError, ValueError):
                return
            if isinstance(message, list) and len(message) >= 2 and message[0] == "stdout":
                chunks.append(str(message[1]))

        ws.on("framereceived", received)

    # the steps

    def run(self) -> UserJourney:
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
        lab = re.compile(rf"/user/{re.escape(self.user)}/")
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
            mark = "walkthrough-" + secrets.token_hex(4)
            listing = " ".join(_shell_quote(d) for d in self.directories)
            cd = 'cd "$HOME/.." && ' if any(not d.startswith("/") for d in self.directories) else ""
            # quotes split the markers in the echoed command line, so only the output matches
            command = f'echo "{mark}"-begin; {cd}ls -1A {listing}; echo "{mark}"-end'
            term.click()
            page.keyboard.type(command)
            page.keyboard.press("Enter")
            self._wait_for(lambda: f"{mark}-end" in _clean("".join(stdout)), "the terminal command did not finish")
            output = _clean("".join(stdout))
            body = output.split(f"{mark}-begin", 1)[1].split(f"{mark}-end", 1)[0].strip("\n")
            self.result.terminal_output = body
            self.result.listing = {_display_path(d): entries
                                   for d, entries in parse_listing(body, self.directories).items()}
            page.wait_for_timeout(300)  # let xterm paint the output before the screenshot
            note["detail"] = "; ".join(f"{d}: {len(e)} entries" for d, e in self.result.listing.items())

    def _wait_for(self, condition, problem: str) -> None:
        deadline = time.monotonic() + self.step_timeout
        while not condition():
            if time.monotonic() > deadline:
                raise RunbookError(f"{problem} within {self.step_timeout:.0f} s")
            self.page.wait_for_timeout(200)


def _shell_quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def _display_path(directory: str) -> str:
    """How a listed folder is named in results: its path inside the user pod."""
    return directory if directory.startswith("/") else f"{POD_HOME_PARENT}/{directory}"


def _clean(text: str) -> str:
    """Terminal output without escape sequences and carriage returns."""
    return _ANSI.sub("", text).replace("\r", "")


def parse_listing(output: str, directories: Sequence[str]) -> dict[str, list[str]]:
    """Parse ``ls -1A DIR...`` output into ``{dir: [entries]}``; an unreadable folder raises."""
    problems = [line for line in output.splitlines() if line.startswith("ls: ")]
    if problems:
        raise RunbookError("listing the folders failed: " + "; ".join(problems))
    listing: dict[str, list[str]] = {d: [] for d in directories}
    if len(directories) == 1:
        listing[directories[0]] = [line for line in output.splitlines() if line.strip()]
        return listing
    current: str | None = None
    for line in output.splitlines():
        if line.endswith(":") and line[:-1] in listing:
            current = line[:-1]
        elif line.strip() and current is not None:
            listing[current].append(line)
    return listing


# -- public entry point -------------------------------------------------------------------


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
    chosen = _find_profile(profile, offered) if offered else Profile(profile, profile)
    expected = list(expected_profiles) if expected_profiles is not None else [p.display_name for p in offered]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    chromium = chromium_path(executable)
    if offline is None:
        offline = _is_loopback(hub_url)

    journeys: list[UserJourney] = []
    with sync_playwright() as pw:
        try:
            # launch() gives Chromium a fresh temporary user-data dir and deletes it on close
            browser = pw.chromium.launch(executable_path=str(chromium), headless=True, args=list(CHROMIUM_FLAGS))
        except Exception as exc:  # noqa: BLE001 - Playwright raises a generic Error
            raise RunbookError(f"Chromium ({chromium}) did not start: {str(exc).splitlines()[0]}") from exc
        try:
            for index, user in enumerate(users, start=1):
                context = browser.new_context(viewport=VIEWPORT, ignore_https_errors=ignore_https_errors)
                try:
                    if offline:
                        context.route("**/*", _loopback_only)
                    secret = password(user) if callable(password) else password
                    journey = _Journey(
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


def _loopback_only(route) -> None:
    """Route handler: let loopback requests through, abort the rest (no network in the sandbox)."""
    if _is_loopback(route.request.url) or route.request.url.startswith(("data:", "blob:")):
        route.continue_()
    else:
        route.abort("blockedbyclient")
