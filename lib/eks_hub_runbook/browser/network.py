"""Which requests the walkthrough's browser may make: loopback only when the hub is local.

The sandbox has no network, so a hub on loopback means every other request (e.g. the
identity provider page's CDN stylesheet) is aborted instead of left to time out.
"""

from __future__ import annotations

from urllib.parse import urlsplit

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1", "[::1]")


def is_loopback(url: str) -> bool:
    """Whether ``url`` points at this machine (localhost, 127.x, ::1)."""
    host = (urlsplit(url).hostname or "").lower()
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def loopback_only(route) -> None:
    """Route handler: let loopback requests through, abort the rest (no network in the sandbox)."""
    if is_loopback(route.request.url) or route.request.url.startswith(("data:", "blob:")):
        route.continue_()
    else:
        route.abort("blockedbyclient")
