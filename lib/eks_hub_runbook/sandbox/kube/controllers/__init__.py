"""In-process controllers of the sandbox cluster, one small module each."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..runtime import Runtime
    from .base import Controller


def build_controllers(runtime: "Runtime") -> list["Controller"]:
    """Create every controller (registered in ``runtime.controllers``), in start order."""
    controllers: list = []
    for controller in controllers:
        runtime.controllers[controller.name] = controller
    return controllers
