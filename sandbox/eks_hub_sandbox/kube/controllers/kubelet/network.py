"""Pod IPs: each pod gets its own loopback address, so two pods can both listen on port
8888 as they would in their own network namespaces (Linux routes all of 127.0.0.0/8 to
the loopback interface; no setup needed).

Each emulator takes its own block ``127.B.0.0/16``, B derived from its state folder, so
sandboxes running side by side (a developer's and a test session's) do not hand out the
same addresses; an address that already has a listening socket is skipped as well.
"""

from __future__ import annotations

import ipaddress
import time
import zlib
from pathlib import Path


def _listening_sockets() -> set[tuple[str, int]]:
    """(IPv4 address, port) of every listening TCP socket (from /proc/net/tcp)."""
    sockets = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = Path("/proc/net", table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] == "0A":
                hex_ip, hex_port = fields[1].split(":")
                if table == "tcp":
                    address = ".".join(str(int(hex_ip[i:i + 2], 16)) for i in (6, 4, 2, 0))
                elif set(hex_ip) == {"0"}:
                    address = "0.0.0.0"  # [::], dual stack: every address
                else:
                    continue
                sockets.add((address, int(hex_port, 16)))
    return sockets


def _listening_addresses() -> set[str]:
    """IPv4 addresses with a listening TCP socket."""
    return {address for address, _ in _listening_sockets()}


_snapshot: tuple[float, set[tuple[str, int]]] = (0.0, set())


def listening(address: str, port: int, max_age: float = 0.1) -> bool:
    """Whether something listens on ``address:port`` (or on every address at ``port``): one read of
    /proc/net/tcp serves every check within ``max_age`` seconds, where a connect per check would
    cost each waiting container a socket (a crowd of servers starting: hundreds a second)."""
    global _snapshot
    now = time.monotonic()
    if now - _snapshot[0] > max_age:
        _snapshot = (now, _listening_sockets())
    return (address, port) in _snapshot[1] or ("0.0.0.0", port) in _snapshot[1]


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
