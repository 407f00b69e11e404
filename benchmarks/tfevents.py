"""Where the time of one terraform run goes, from its ``-json`` event stream.

Every line Terraform prints with ``-json`` carries an ``@timestamp`` (microseconds). From
those and the process's own start and exit times one run splits into:

- ``startup``: process start to the first event (CLI, configuration, provider plugin start);
- ``plan``: first event to the first resource operation (refresh + plan, in one process);
- ``provider``: time during which at least one resource operation (create, delete, refresh,
  data read) was in flight: the AWS provider talking to the local AWS, including its
  polling waits (the union of the operations' intervals, so parallel waits count once);
- ``core``: the rest of the apply phase (Terraform's graph walk between operations) and
  the exit after the last event.

The slowest single operations are listed with the reason they are slow when it is a
known provider wait (fixed polling intervals of the AWS provider's waiters).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Resource types whose create/delete is dominated by a fixed wait inside the AWS provider
# (its waiters poll on a schedule however fast the API answers), as seen against moto.
KNOWN_WAITS = {
    "aws_sqs_queue": "provider waits for queue attributes to propagate (~25 s on create)",
    "aws_eks_cluster": "provider's EKS waiter polls cluster status (30 s interval on delete)",
    "aws_eks_node_group": "provider's EKS waiter polls node-group status",
    "aws_eks_addon": "provider's EKS waiter polls add-on status",
    "aws_nat_gateway": "provider's NAT gateway waiter polls state (10 s interval)",
    "aws_vpc": "provider re-reads the VPC until attributes settle (~10 s)",
    "aws_vpc_ipv4_cidr_block_association": "provider waits for the association state (~10 s)",
    "aws_subnet": "provider waits for the subnet to become available (~10 s)",
    "aws_lb": "provider's load balancer waiter polls state",
    "aws_efs_mount_target": "provider waits for the mount target lifecycle state",
    "aws_efs_file_system": "provider waits for the file system lifecycle state",
    "aws_iam_role": "provider retries for IAM eventual consistency",
    "aws_internet_gateway": "provider waits for attachment / detachment",
    "aws_eip": "provider waits for the address to be released",
}

_OPERATION_EVENTS = {"apply_start": "start", "refresh_start": "start",
                     "apply_complete": "end", "apply_errored": "end", "refresh_complete": "end"}


def parse_timestamp(text: str) -> float:
    """Seconds since the epoch of an ``@timestamp`` (``2025-01-28T14:12:03.123456+01:00`` or ``Z``)."""
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def read_events(path: Path) -> list[dict[str, Any]]:
    """The JSON events of a captured ``-json`` stream (other lines are skipped)."""
    events = []
    for line in Path(path).read_text(errors="replace").splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict) and "@timestamp" in data:
            events.append(data)
    return events


def _union(intervals: Iterable[tuple[float, float]]) -> float:
    total, current_start, current_end = 0.0, None, None
    for start, end in sorted(intervals):
        if current_end is None or start > current_end:
            if current_end is not None:
                total += current_end - current_start
            current_start, current_end = start, end
        else:
            current_end = max(current_end, end)
    if current_end is not None:
        total += current_end - current_start
    return total


@dataclass
class Breakdown:
    """The split of one terraform run (seconds)."""

    wall: float
    startup: float
    plan: float
    provider: float
    core: float
    operations: int
    events: int
    slowest: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"wall_s": round(self.wall, 2), "startup_s": round(self.startup, 2), "plan_s": round(self.plan, 2),
                "provider_s": round(self.provider, 2), "core_s": round(self.core, 2),
                "operations": self.operations, "events": self.events, "slowest": self.slowest}


def breakdown(events: list[dict[str, Any]], started: float, ended: float, slowest: int = 5) -> Breakdown:
    """Split a run that started at ``started`` and exited at ``ended`` (epoch seconds)."""
    wall = max(ended - started, 0.0)
    if not events:
        return Breakdown(wall, wall, 0.0, 0.0, 0.0, 0, 0)
    stamps = [parse_timestamp(e["@timestamp"]) for e in events]
    first, last = min(stamps), max(stamps)
    open_ops: dict[tuple[str, str], float] = {}
    intervals: list[tuple[float, float]] = []
    durations: list[dict[str, Any]] = []
    first_op = None
    for event, stamp in zip(events, stamps):
        kind = _OPERATION_EVENTS.get(event.get("type", ""))
        if kind is None:
            continue
        hook = event.get("hook") or {}
        address = (hook.get("resource") or {}).get("addr", "")
        family = "refresh" if event["type"].startswith("refresh") else "apply"
        key = (family, address)
        if kind == "start":
            open_ops[key] = stamp
            first_op = stamp if first_op is None else min(first_op, stamp)
        elif key in open_ops:
            begin = open_ops.pop(key)
            intervals.append((begin, stamp))
            if family == "apply" and hook.get("action") != "read":
                resource_type = (hook.get("resource") or {}).get("resource_type", "")
                durations.append({"address": address, "action": hook.get("action", ""), "seconds": round(stamp - begin, 1),
                                  "wait": KNOWN_WAITS.get(resource_type, "")})
    provider = _union(intervals)
    startup = max(first - started, 0.0)
    plan = max((first_op if first_op is not None else last) - first, 0.0)
    core = max(wall - startup - plan - provider, 0.0)
    durations.sort(key=lambda d: -d["seconds"])
    return Breakdown(wall, startup, plan, provider, core, len(intervals), len(events), durations[:slowest])


def replay_cost(lines: list[str], repeat: int = 3) -> dict[str, float]:
    """What the runbook's own event handling costs per line: ``parse_line`` + ``RunProgress.handle``
    (log file write, no callback), replayed over a captured stream. Best of ``repeat``."""
    import tempfile

    from eks_hub_runbook.terraform.events import parse_line
    from eks_hub_runbook.terraform.progress import RunProgress

    lines = [line for line in lines if line.strip()]
    best = float("inf")
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(repeat):
            progress = RunProgress("replay", Path(folder) / "replay.log", callback=None, bar=False)
            started = time.perf_counter()
            for line in lines:
                progress.handle(parse_line(line))
            best = min(best, time.perf_counter() - started)
            progress.close()
    return {"lines": len(lines), "total_ms": round(best * 1000, 2),
            "per_line_us": round(best * 1e6 / len(lines), 1) if lines else 0.0}
