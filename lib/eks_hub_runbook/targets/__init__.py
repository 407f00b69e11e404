"""Where a deployment runs, chosen by the ``target`` parameter: the registry of targets.

The product ships one target, ``aws`` (:mod:`.aws`). Others plug in through the entry point
group ``eks_hub_runbook.targets``, as papermill's engines do: a distribution declares

    [project.entry-points."eks_hub_runbook.targets"]
    sandbox = "eks_hub_sandbox.target:SandboxTarget"

and ``get("sandbox")`` loads it. The product imports no target but its own; what differs
between targets is behind :class:`~.base.Target`, so no other module compares target names.

The default target is the local sandbox (free, offline), when it is installed.
"""

from __future__ import annotations

import functools
from importlib.metadata import entry_points

from ..errors import ParameterError
from .aws import AwsTarget
from .base import Target

ENTRY_POINT_GROUP = "eks_hub_runbook.targets"
DEFAULT = "sandbox"  # the parameters' default: the local stand-in, when installed
_BUILT_IN: dict[str, type[Target]] = {AwsTarget.name: AwsTarget}
_INSTALL_HINT = {DEFAULT: "install it: pip install -e sandbox (make setup does), or pass -p target aws"}


def _entry_points() -> dict:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def names() -> tuple[str, ...]:
    """Every target that can be chosen: the default first (when installed), then the rest sorted."""
    available = set(_BUILT_IN) | set(_entry_points())
    return tuple(sorted(available, key=lambda name: (name != DEFAULT, name)))


@functools.cache
def get(name: str) -> Target:
    """The target called ``name`` (one instance per process)."""
    if name in _BUILT_IN:
        return _BUILT_IN[name]()
    points = _entry_points()
    if name not in points:
        if name in _INSTALL_HINT:
            raise ParameterError("target", f"{name!r} is not installed", _INSTALL_HINT[name])
        raise ParameterError("target", f"{name!r} is not one of {', '.join(names())}", f"use one of: {', '.join(names())}")
    target = points[name].load()()
    if not isinstance(target, Target) or target.name != name:
        raise TypeError(f"entry point {name!r} of {ENTRY_POINT_GROUP} does not give a Target named {name!r}")
    return target


def of(params) -> Target:
    """The target of a deployment (``params``: DeploymentParameters)."""
    return get(params.target)


def stop_local_services() -> list[str]:
    """Stop the local services of every installed target (for the current state folder)."""
    stopped: list[str] = []
    for name in names():
        stopped += get(name).stop()
    return stopped


__all__ = ["DEFAULT", "ENTRY_POINT_GROUP", "Target", "get", "names", "of", "stop_local_services"]
