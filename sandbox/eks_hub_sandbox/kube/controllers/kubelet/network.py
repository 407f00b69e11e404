"""Pod IPs: each pod gets its own loopback address, so two pods can both listen on port
8888 as they would in their own network namespaces (Linux routes all of 127.0.0.0/8 to
the loopback interface; no setup needed).

Each emulator takes its own block ``127.B.0.0/16``, B derived from its state folder, so
sandboxes running side by side (a developer's and a test session's) do not hand out the
same addresses; an address that already has a listening socket is skipped as well.
"""

from __future__ import annotations

import ipaddress
import zlib
from pathlib import Path


def _listening_addresses() -> set[str]:
    """IPv4 addresses with a listening TCP socket (from /proc/net/tcp)."""
    addresses = set()
    try:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return addresses
    for line in lines:
        fields = line.split()
        if len(fields) > 3 and fields[3] == "0A":
            hex_ip = fields[1].split(":")[0]
            addresses.add(".".join(str(int(hex_ip[i:i + 2], 16)) for i in (6, 4, 2, 0)))
    return addresses


class PodAddressPool:
    """Allocates addresses of this emulator's block, round-robin (a freed one is not reused at once)."""

    def __init__(self, seed: str = "") -> None:
        self.block = 1 + zlib.crc32(seed.encode()) % 254 if seed else 0
        self._first = int(ipaddress.ip_address(f"127.{self.block}.0.10"))
        self._last = int(ipaddress.ip_address(f"127.{self.block}.255.254"))
        self._used: set[int] = set()
        self._cursor = self._first

    def allocate(self) -> str:
        busy = _listening_addresses()
        for _ in range(self._last - self._first + 1):
            candidate = self._cursor
            self._cursor = self._first if self._cursor >= self._last else self._cursor + 1
            if candidate in self._used or (candidate & 0xFF) in (0, 255):
                continue
            address = str(ipaddress.ip_address(candidate))
            if address in busy:
                continue
            self._used.add(candidate)
            return address
        raise RuntimeError(f"no free pod addresses left in 127.{self.block}.0.0/16")

    def release(self, address: str | None) -> None:
        if address:
            self._used.discard(int(ipaddress.ip_address(address)))


def service_address(cluster_ip: str, seed: str) -> str:
    """The loopback address that stands in for a Service's virtual IP here: ``172.20.a.b``
    becomes ``127.S.a.b``, S a block of its own next to this emulator's pod block (nothing on
    this machine routes the service CIDR, so the sandbox's kube-proxy listens there instead)."""
    block = 1 + (zlib.crc32(seed.encode()) + 127) % 254
    third, fourth = ipaddress.ip_address(cluster_ip).packed[2:]
    return f"127.{block}.{third}.{fourth}"
