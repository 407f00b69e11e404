"""Pod IPs: each pod gets its own loopback address, so two pods can both listen on port
8888 as they would in their own network namespaces (Linux routes all of 127.0.0.0/8 to
the loopback interface; no setup needed).

Each emulator takes its own block ``127.B.0.0/16``, B derived from its state folder, so
sandboxes running side by side (a developer's and a test session's) do not hand out the
same addresses; an address that already has a listening socket is skipped as well.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import time
import zlib
from pathlib import Path


_NETLINK_INET_DIAG, _SOCK_DIAG_BY_FAMILY, _NLMSG_DONE, _NLMSG_ERROR = 4, 20, 3, 2
_TCP_LISTEN = 10


def _listening_sockets() -> set[tuple[str, int]]:
    """(IPv4 address, port) of every listening TCP socket ([::] as 0.0.0.0): asked of the kernel with a
    sock_diag dump filtered to LISTEN (it skips the thousands of other sockets a busy machine has,
    which /proc/net/tcp lists and costs milliseconds to read); /proc/net/tcp where netlink is refused."""
    try:
        return _listening_from_netlink()
    except OSError:
        return _listening_from_proc()


def _listening_from_netlink() -> set[tuple[str, int]]:
    sockets = set()
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_INET_DIAG) as link:
        for family in (socket.AF_INET, socket.AF_INET6):
            # nlmsghdr + inet_diag_req_v2 (family, protocol, ext, pad, states, an empty inet_diag_sockid)
            request = struct.pack("=BBBBI48x", family, socket.IPPROTO_TCP, 0, 0, 1 << _TCP_LISTEN)
            link.send(struct.pack("=IHHII", 16 + len(request), _SOCK_DIAG_BY_FAMILY, 0x301, family, 0) + request)
            done = False
            while not done:
                data = link.recv(65536)
                offset = 0
                while offset + 16 <= len(data):
                    length, kind = struct.unpack_from("=IH", data, offset)
                    if kind == _NLMSG_DONE:
                        done = True
                        break
                    if kind == _NLMSG_ERROR:
                        raise OSError("sock_diag refused the request")
                    # inet_diag_msg: family, state, timer, retrans, then inet_diag_sockid (sport, dport, src...)
                    port = struct.unpack_from(">H", data, offset + 16 + 4)[0]
                    raw = data[offset + 16 + 8: offset + 16 + 8 + (4 if family == socket.AF_INET else 16)]
                    if family == socket.AF_INET:
                        sockets.add((socket.inet_ntop(socket.AF_INET, raw), port))
                    elif not any(raw):
                        sockets.add(("0.0.0.0", port))  # [::], dual stack: every address
                    offset += (length + 3) & ~3
                if not data:
                    break
    return sockets


def _listening_from_proc() -> set[tuple[str, int]]:
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
