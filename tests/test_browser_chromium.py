"""browser.chromium and browser.network: finding and starting Chromium, loopback-only requests.

No browser starts here: Playwright is replaced by small stand-ins.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from eks_hub_runbook.browser import chromium, network
from eks_hub_runbook.errors import RunbookError


# -- chromium ---------------------------------------------------------------------------------

def test_missing_chromium_says_how_to_install(tmp_path):
    with pytest.raises(RunbookError, match="make browser"):
        chromium.chromium_path(tmp_path / "no-chromium")


def test_a_given_executable_is_used_as_is(tmp_path, monkeypatch):
    binary = tmp_path / "my-chromium"
    binary.write_text("")
    monkeypatch.setattr(chromium.shutil, "which", lambda name: pytest.fail("no PATH lookup for a given executable"))
    assert chromium.chromium_path(binary) == binary
    assert chromium.chromium_path(str(binary)) == binary


def test_chromium_on_path_when_debian_s_is_absent(tmp_path, monkeypatch):
    on_path = tmp_path / "bin" / "chromium"
    on_path.parent.mkdir()
    on_path.write_text("")
    monkeypatch.setattr(chromium, "CHROMIUM", tmp_path / "usr-bin-chromium")
    monkeypatch.setattr(chromium.shutil, "which", lambda name: str(on_path) if name == "chromium" else None)
    assert chromium.chromium_path() == on_path


def test_no_chromium_anywhere_names_debian_s_path(tmp_path, monkeypatch):
    monkeypatch.setattr(chromium, "CHROMIUM", tmp_path / "usr-bin-chromium")
    monkeypatch.setattr(chromium.shutil, "which", lambda name: None)
    with pytest.raises(RunbookError) as failure:
        chromium.chromium_path()
    assert str(failure.value).startswith(f"Chromium is not installed at {tmp_path / 'usr-bin-chromium'}; ")
    assert "never downloads a browser build" in str(failure.value)


class _FakePlaywright:
    def __init__(self, error: Exception | None = None):
        self.error = error
        self.calls: list[dict] = []
        self.chromium = self

    def launch(self, **kwargs):
        self.calls.append(kwargs)
        if self.error:
            raise self.error
        return "a browser"


def test_launch_starts_headless_chromium_with_the_flags():
    pw = _FakePlaywright()
    assert chromium.launch(pw, Path("/usr/bin/chromium")) == "a browser"
    assert pw.calls == [{"executable_path": "/usr/bin/chromium", "headless": True,
                         "args": list(chromium.CHROMIUM_FLAGS)}]
    assert "--headless" in chromium.CHROMIUM_FLAGS and "--disable-quic" in chromium.CHROMIUM_FLAGS


def test_a_chromium_that_does_not_start_is_named_with_the_first_line_of_the_error():
    pw = _FakePlaywright(Exception("Browser closed.\n==== logs ====\nlots of detail"))
    with pytest.raises(RunbookError) as failure:
        chromium.launch(pw, Path("/opt/chromium"))
    assert str(failure.value) == "Chromium (/opt/chromium) did not start: Browser closed."


def test_screenshots_have_the_viewport_size():
    assert chromium.VIEWPORT == {"width": 1024, "height": 640}


# -- network ----------------------------------------------------------------------------------

@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/hub/", "http://localhost/", "http://LOCALHOST:1/",
                                 "http://127.1.2.3/", "http://[::1]:8000/"])
def test_loopback_urls(url):
    assert network.is_loopback(url)


@pytest.mark.parametrize("url", ["https://hub.example.com/", "http://10.0.0.1/", "https://cdn.jsdelivr.net/x.css",
                                 "data:text/plain,hi", ""])
def test_other_urls_are_not_loopback(url):
    assert not network.is_loopback(url)


class _FakeRoute:
    def __init__(self, url: str):
        self.request = type("Request", (), {"url": url})()
        self.outcome: str | None = None

    def continue_(self):
        self.outcome = "continue"

    def abort(self, reason: str):
        self.outcome = f"abort {reason}"


@pytest.mark.parametrize("url, outcome", [
    ("http://127.0.0.1:8000/hub/login", "continue"),
    ("data:image/png;base64,AAAA", "continue"),
    ("blob:http://127.0.0.1:8000/1234", "continue"),
    ("https://cdn.jsdelivr.net/npm/bootstrap.css", "abort blockedbyclient"),
])
def test_loopback_only_lets_local_requests_through(url, outcome):
    route = _FakeRoute(url)
    network.loopback_only(route)
    assert route.outcome == outcome
