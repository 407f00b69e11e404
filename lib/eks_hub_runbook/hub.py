"""A JupyterHub client for tests and notebooks: log in, start a server with a profile,
follow its progress, read and write files in it, stop it.

Works the same against the sandbox hub and a hub on EKS; the login method is found from
the hub's own login page (the dummy form, or the OAuth button that leads to Cognito /
Keycloak / the sandbox provider, whose sign-in form is filled in).

Session cookies, API tokens and passwords live only inside the client: they are never
printed, logged or part of a returned value or an exception message.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlparse

import requests
import requests.adapters
from urllib3.util.retry import Retry

from .errors import HubError

# Paths in the user's file browser (its root is /home): private home and the shared folder.
HOME_DIR = "jovyan"
SHARED_DIR = "shared"


@dataclass
class _Form:
    action: str
    method: str
    inputs: dict[str, str] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)


class _Forms(HTMLParser):
    """The forms of a page with their inputs (enough for login pages)."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[_Form] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(_Form(attr.get("action", ""), attr.get("method", "get").lower()))
        elif tag == "input" and self.forms and attr.get("name"):
            form = self.forms[-1]
            form.inputs[attr["name"]] = attr.get("value", "")
            form.types[attr["name"]] = attr.get("type", "text").lower()
        elif tag == "a" and attr.get("href"):
            self.links.append(attr["href"])


# configurable-http-proxy (Node) closes a kept-alive connection after 5 s idle; a request sent as it
# does so gets no answer (RemoteDisconnected / reset). Browsers send it again; so does this client,
# for the methods that are safe to repeat, and for any request whose connection was never made.
IDLE_CLOSE_RETRIES = Retry(total=3, connect=3, read=2, status=0, other=0, backoff_factor=0.1,
                           allowed_methods=Retry.DEFAULT_ALLOWED_METHODS, raise_on_status=False,
                           respect_retry_after_header=False)


class _QueryFreeRetryLog(logging.Filter):
    """urllib3 logs each retry with the request's URL; a query may hold a one-time OAuth code."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and record.msg.startswith("Retrying") and record.args:
            record.args = tuple(a.split("?", 1)[0] if isinstance(a, str) else a for a in record.args)
        return True


logging.getLogger("urllib3.connectionpool").addFilter(_QueryFreeRetryLog())


def _reason(exc: BaseException) -> str:
    """``ConnectionError (RemoteDisconnected)``-style: the request's error and the innermost one under
    it (an OS error by its message). URLs, which may carry one-time codes, are left out."""
    inner, seen = exc, set()
    while id(inner) not in seen:
        seen.add(id(inner))
        nested = getattr(inner, "reason", None) if isinstance(getattr(inner, "reason", None), BaseException) else None
        nested = nested or next((a for a in getattr(inner, "args", ()) if isinstance(a, BaseException)), None)
        nested = nested or inner.__cause__ or inner.__context__
        if nested is None:
            break
        inner = nested
    if inner is exc:
        return type(exc).__name__
    detail = inner.strerror if isinstance(inner, OSError) and inner.strerror else type(inner).__name__
    return f"{type(exc).__name__} ({detail})"


def _parse(html: str) -> _Forms:
    parser = _Forms()
    parser.feed(html)
    return parser


class HubClient:
    """One user's session with a hub at ``url`` (e.g. ``http://127.0.0.1:8000``)."""

    def __init__(self, url: str, *, verify: bool | str = True, timeout: float = 30.0):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.username: str | None = None
        self._session = requests.Session()
        self._session.verify = verify
        adapter = requests.adapters.HTTPAdapter(max_retries=IDLE_CLOSE_RETRIES)
        for scheme in ("http://", "https://"):
            self._session.mount(scheme, adapter)
        self._token: str | None = None

    def __repr__(self) -> str:
        return f"HubClient(url={self.url!r}, user={self.username!r})"

    # --- low level -------------------------------------------------------------------

    def _request(self, method: str, path: str, *, auth: str = "token", **kwargs: Any) -> requests.Response:
        url = path if path.startswith("http") else f"{self.url}{path}"
        headers = kwargs.pop("headers", {})
        if auth == "token" and self._token:
            headers["Authorization"] = f"token {self._token}"
        elif auth == "cookie":
            # The hub sets _xsrf on /hub/; a running single-user server sets its own on
            # /user/<name>/ (after a login that lands there): take the hub's.
            xsrf = next((c.value for c in self._session.cookies if c.name == "_xsrf" and c.path.startswith("/hub")),
                        None) or next((c.value for c in self._session.cookies if c.name == "_xsrf"), None)
            if xsrf:
                headers["X-XSRFToken"] = xsrf
        kwargs.setdefault("timeout", self.timeout)
        try:
            return self._session.request(method, url, headers=headers, **kwargs)
        except requests.RequestException as exc:
            raise HubError(f"cannot reach the hub at {self.url}: {_reason(exc)}") from None

    def _api(self, method: str, path: str, expect: tuple[int, ...] = (200,), **kwargs: Any) -> requests.Response:
        response = self._request(method, f"/hub/api{path}", **kwargs)
        if response.status_code not in expect:
            raise HubError(f"{method} /hub/api{path} answered HTTP {response.status_code}: {_message(response)}")
        return response

    def _user(self) -> str:
        if not self.username:
            raise HubError("not logged in: call login() first")
        return self.username

    # --- login -------------------------------------------------------------------------

    def health(self) -> dict:
        """The hub's version info (``GET /hub/api/``); raises HubError if it does not answer."""
        return self._api("GET", "/", auth="none").json()

    def login(self, username: str, password: str = "") -> str:
        """Log in through the hub's own login page; returns the JupyterHub user name.

        Dummy login: the form is posted with its xsrf field. OAuth login: the hub's
        ``oauth_login`` redirect is followed to the provider, whose sign-in form is filled
        with ``username`` (and ``password`` if it has a password field), and back.
        Raises HubError when the hub refuses the user.
        """
        page = self._request("GET", "/hub/login", auth="none")
        if page.status_code != 200:
            raise HubError(f"the hub's login page answered HTTP {page.status_code}")
        parsed = _parse(page.text)
        login_form = next((f for f in parsed.forms if "password" in f.types.values() and "username" in f.inputs), None)
        if login_form:
            data = {**login_form.inputs, "username": username, "password": password}
            response = self._request("POST", urljoin(page.url, login_form.action or page.url), auth="none",
                                     data=data, allow_redirects=True)
        else:
            oauth = next((link for link in parsed.links if "oauth_login" in link), None)
            if not oauth:
                raise HubError("the hub's login page has neither a login form nor an OAuth login link")
            response = self._oauth_flow(urljoin(page.url, oauth), username, password)
        return self._finish_login(response)

    def _oauth_flow(self, start_url: str, username: str, password: str) -> requests.Response:
        provider_page = self._request("GET", start_url, auth="none", allow_redirects=True)
        if provider_page.status_code != 200:
            raise HubError(f"the identity provider answered HTTP {provider_page.status_code} at "
                           f"{urlparse(provider_page.url).netloc}")
        forms = [f for f in _parse(provider_page.text).forms if f.method == "post"]
        form = next((f for f in forms if any(t in ("text", "email") for t in f.types.values())), None)
        if form is None:
            raise HubError(f"no sign-in form on the identity provider's page {urlparse(provider_page.url).path}")
        data = dict(form.inputs)
        for name, kind in form.types.items():
            if kind in ("text", "email"):
                data[name] = username
            elif kind == "password":
                data[name] = password
        return self._request("POST", urljoin(provider_page.url, form.action or provider_page.url), auth="none",
                             data=data, allow_redirects=True)

    def _finish_login(self, response: requests.Response) -> str:
        if response.status_code == 403:
            raise HubError("the hub refused this user (403: not in the allowed users)")
        # After a successful login the hub redirects to the user's server when one runs; an
        # error from that server (e.g. one left from an earlier hub) is not a failed login.
        if response.status_code >= 400 and not urlparse(response.url).path.startswith("/user/"):
            raise HubError(f"login failed: HTTP {response.status_code} at {urlparse(response.url).path}")
        who = self._request("GET", "/hub/api/user", auth="cookie")
        if who.status_code != 200:
            raise HubError("login did not give a hub session (wrong password, or the user is not allowed)")
        self.username = who.json()["name"]
        self._token = None
        return self.username

    def token(self, note: str = "eks-hub-runbook", expires_in: int = 3600) -> None:
        """Create an API token for this user and use it for the API from now on (kept private)."""
        response = self._request("POST", f"/hub/api/users/{self._user()}/tokens", auth="cookie",
                                 json={"note": note, "expires_in": expires_in})
        if response.status_code not in (200, 201):
            raise HubError(f"could not create an API token: HTTP {response.status_code}")
        self._token = response.json()["token"]

    def _ensure_token(self) -> None:
        if not self._token:
            self.token()

    # --- servers -----------------------------------------------------------------------

    def user_model(self) -> dict:
        """This user's model: name, admin, servers (with ready / pending / url)."""
        self._ensure_token()
        return self._api("GET", f"/users/{self._user()}").json()

    def server(self) -> dict | None:
        """The default server's model, or None when it is not running."""
        return self.user_model().get("servers", {}).get("")

    def spawn(self, profile: str, *, busy_timeout: float = 300.0, **options: str) -> None:
        """Request the default server with a profile (by slug) and profile options (e.g. image='pyspark').

        A hub at its ``concurrent_spawn_limit`` answers 429 with ``Retry-After``: the request is made
        again after that wait, as a person would, for up to ``busy_timeout`` seconds."""
        self._ensure_token()
        deadline = time.monotonic() + busy_timeout
        while True:
            response = self._api("POST", f"/users/{self._user()}/server", expect=(201, 202, 429),
                                 json={"profile": profile, **options})
            if response.status_code != 429:
                return
            wait = _retry_after(response)
            if time.monotonic() + wait > deadline:
                raise HubError(f"the hub stayed too busy to start a server for {busy_timeout:.0f} s: {_message(response)}")
            time.sleep(wait)

    def progress(self, timeout: float = 900.0) -> Iterator[dict]:
        """Spawn progress events (``progress``, ``message``, ``ready``/``failed``) as they happen."""
        self._ensure_token()
        response = self._request("GET", f"/hub/api/users/{self._user()}/server/progress", stream=True,
                                 timeout=(self.timeout, timeout))
        if response.status_code != 200:
            raise HubError(f"no spawn progress: HTTP {response.status_code}")
        with response:
            for line in response.iter_lines(decode_unicode=True):
                if line and line.startswith("data:"):
                    event = json.loads(line[5:])
                    yield event
                    if event.get("ready") or event.get("failed"):
                        return

    def wait_ready(self, timeout: float = 900.0) -> dict:
        """Follow progress until the server is ready; returns its model. HubError on failure or timeout."""
        deadline = time.monotonic() + timeout
        messages: list[str] = []
        try:
            for event in self.progress(timeout=timeout):
                messages.append(event.get("message", ""))
                if event.get("failed"):
                    raise HubError(f"the server of {self.username} failed to start: {' | '.join(messages[-3:])}")
        except requests.RequestException:
            pass  # stream interrupted: fall back to polling
        while time.monotonic() < deadline:
            model = self.server()
            if model and model.get("ready"):
                return model
            if model is None:
                raise HubError(f"the server of {self.username} stopped while starting: {' | '.join(messages[-3:])}")
            time.sleep(0.5)
        raise HubError(f"the server of {self.username} was not ready within {timeout:.0f} s: {' | '.join(messages[-3:])}")

    def stop(self, timeout: float = 120.0) -> None:
        """Stop the default server and wait until it is gone."""
        self._ensure_token()
        self._api("DELETE", f"/users/{self._user()}/server", expect=(202, 204, 400))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.server() is None:
                return
            time.sleep(0.5)
        raise HubError(f"the server of {self.username} did not stop within {timeout:.0f} s")

    def users(self) -> list[dict]:
        """Every user with their servers (needs an admin user)."""
        self._ensure_token()
        return self._api("GET", "/users").json()

    # --- files in the user's server (Jupyter contents API) -------------------------------

    def _contents(self, path: str) -> str:
        return f"{self.url}/user/{self._user()}/api/contents/{path.lstrip('/')}"

    def write_file(self, path: str, text: str) -> None:
        """Write a text file in the user's server (``jovyan/...`` private, ``shared/...`` shared)."""
        self._ensure_token()
        response = self._request("PUT", self._contents(path), json={"type": "file", "format": "text", "content": text})
        if response.status_code not in (200, 201):
            raise HubError(f"could not write {path} in the server of {self.username}: HTTP {response.status_code}")

    def read_file(self, path: str) -> str | None:
        """A text file's content from the user's server, or None if it does not exist."""
        self._ensure_token()
        response = self._request("GET", self._contents(path), params={"type": "file", "format": "text"})
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise HubError(f"could not read {path} in the server of {self.username}: HTTP {response.status_code}")
        return response.json()["content"]

    def list_dir(self, path: str = "") -> list[str]:
        """Names in a folder of the user's server."""
        self._ensure_token()
        response = self._request("GET", self._contents(path), params={"content": "1"})
        if response.status_code != 200:
            raise HubError(f"could not list {path or '/'} in the server of {self.username}: HTTP {response.status_code}")
        return sorted(item["name"] for item in response.json().get("content") or [])


def _retry_after(response: requests.Response, default: float = 2.0) -> float:
    """Seconds a 429 asks to wait (``Retry-After``, 0.5 to 30), else ``default``."""
    try:
        return min(max(float(response.headers.get("Retry-After", default)), 0.5), 30.0)
    except ValueError:
        return default


def _message(response: requests.Response) -> str:
    try:
        return str(response.json().get("message", ""))[:300]
    except ValueError:
        return response.text[:200]
