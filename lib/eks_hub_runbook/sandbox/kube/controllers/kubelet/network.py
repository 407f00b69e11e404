"""Pod IPs: each pod gets its own loopback address (127.0.0.10 upward, then 127.0.1.x ...),
so two pods can both listen on port 8888 as they would in their own network namespaces.
Linux routes all of 127.0.0.0/8 to the loopback interface, so no setup is needed."""

from __future__ import annotations

import ipaddress

FIRST = int(ipaddress.ip_address("127.0.0.10"))
LAST = int(ipaddress.ip_address("127.0.255.254"))


class PodAddressPool:
    """Allocates addresses round-robin so a freed address is not reused at once."""

    def __init__(self) -> None:
        self._used: set[int] = set()
        self._cursor = FIRST

    def allocate(self) -> str:
        for _ in range(LAST - FIRST + 1):
            candidate = self._cursor
            self._cursor = FIRST if self._cursor >= LAST else self._cursor + 1
            last_octet = candidate & 0xFF
            if candidate in self._used or last_octet in (0, 255):
                continue
            self._used.add(candidate)
            return str(ipaddress.ip_address(candidate))
        raise RuntimeError("no free pod addresses left in 127.0.0.0/16")

    def release(self, address: str | None) -> None:
        if address:
            self._used.discard(int(ipaddress.ip_address(address)))

    def reserve(self, address: str) -> None:
        self._used.add(int(ipaddress.ip_address(address)))
