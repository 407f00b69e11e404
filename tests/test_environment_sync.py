"""environment.yml (conda) and pyproject.toml must pin the same Python packages."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pyproject_pins() -> dict[str, str]:
    """The product's pins (with its dev extras) and the sandbox distribution's (but the product itself)."""
    deps: list[str] = []
    for path in (ROOT / "pyproject.toml", ROOT / "sandbox" / "pyproject.toml"):
        project = tomllib.loads(path.read_text())["project"]
        deps += project["dependencies"] + [d for group in project.get("optional-dependencies", {}).values() for d in group]
    pins = [_split(d) for d in deps]
    conflicting = {name for name, version in pins if dict(pins)[name] != version}
    assert not conflicting, f"pinned differently in the two pyproject files: {conflicting}"
    return {name: version for name, version in pins if name != "eks-hub-runbook"}


def _environment_pins() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(item["pip"] for item in env["dependencies"] if isinstance(item, dict))
    return dict(_split(d) for d in pip_section if not d.startswith("-e"))


def _split(requirement: str) -> tuple[str, str]:
    match = re.fullmatch(r"([A-Za-z0-9_.\-]+(?:\[[\w,]+\])?)==([\w.]+)", requirement.strip())
    assert match, f"{requirement!r} is not pinned with =="
    return match.group(1).lower(), match.group(2)


def test_every_dependency_is_pinned_the_same_in_both_files():
    assert _environment_pins() == _pyproject_pins()


def test_lock_file_agrees_with_direct_pins():
    lock = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            lock[name.lower().replace("_", "-")] = version.strip()
    for name, version in _pyproject_pins().items():
        base = re.sub(r"\[.*\]", "", name).replace("_", "-")
        assert lock.get(base) == version, f"requirements.lock pins {base}=={lock.get(base)}, pyproject wants {version}"
