"""The pinned install plan: ``terraform/charts.yaml``, read and checked."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import PlatformError
from ..params import DeploymentParameters
from ..paths import TERRAFORM_DIR
from .templating import load_yaml

CHARTS_FILE = TERRAFORM_DIR / "charts.yaml"


@dataclass(frozen=True)
class Release:
    """One Helm release of the plan."""

    name: str
    chart: str
    version: str
    namespace: str
    values: str
    repo: str = ""
    when: str = ""


@dataclass(frozen=True)
class ManifestStep:
    """A group of plain manifests (``terraform/manifests/<group>``)."""

    group: str


Step = Release | ManifestStep


def plan(params: DeploymentParameters | None = None) -> list[Step]:
    """The ordered steps; releases behind a false ``when`` flag are left out when ``params`` is given."""
    data = load_yaml(CHARTS_FILE) or {}
    steps: list[Step] = []
    for index, raw in enumerate(data.get("steps", [])):
        if "manifests" in raw:
            steps.append(ManifestStep(group=raw["manifests"]))
            continue
        try:
            release = Release(
                name=raw["release"], chart=raw["chart"], version=str(raw["version"]),
                namespace=raw["namespace"], values=raw["values"], repo=raw.get("repo", ""), when=raw.get("when", ""),
            )
        except KeyError as exc:
            raise PlatformError(f"{CHARTS_FILE}: step {index + 1} lacks {exc.args[0]!r}") from None
        if not release.chart.startswith("oci://") and not release.repo:
            raise PlatformError(f"{CHARTS_FILE}: release {release.name} needs a repo or an oci:// chart")
        if params is not None and release.when and not getattr(params, release.when):
            continue
        steps.append(release)
    return steps


def releases(params: DeploymentParameters | None = None) -> list[Release]:
    return [step for step in plan(params) if isinstance(step, Release)]


def release(name: str) -> Release:
    for item in releases():
        if item.name == name:
            return item
    raise PlatformError(f"no release '{name}' in {CHARTS_FILE}")
