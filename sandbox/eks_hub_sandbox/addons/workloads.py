"""The cluster add-ons' workloads: the data of ``workloads.yaml`` and pure builders over it.

Each entry of the data file names an EKS add-on (``addons``, keyed by the add-on name of
``terraform/eks.tf``) or a helm release (``releases``, keyed by the release name of
``terraform/charts.yaml``), what in the sandbox cluster emulator really does its job
(``emulated_by``), where its figures come from (``source``), the values its objects read
(an add-on's ``defaults``, a chart's ``chart_defaults``) and the objects as templates.

The builders fill the templates in: the values are the defaults merged (as helm merges
values files) with what was actually installed (a release's values file, an add-on's
``configurationValues``), and every workload's pod template gets the annotation saying the
pod is emulated. Nothing here talks to a cluster or to AWS (:mod:`eks_hub_sandbox.install` does).
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from eks_hub_runbook.platform.templating import deep_merge
from ..errors import SandboxError

DATA_FILE = Path(__file__).with_name("workloads.yaml")
WORKLOAD_KINDS = ("Deployment", "DaemonSet", "StatefulSet")
_MISSING = object()
_REFERENCE = re.compile(r"\$\{([A-Za-z0-9_.-]+)\}")
_EMPTY = (None, "", {}, [])


class WorkloadDataError(SandboxError):
    """The add-on workloads data file is malformed or names something it does not define."""


@dataclass(frozen=True)
class Entry:
    """One EKS add-on or helm release of the data file."""

    name: str
    kind: str  # "addon" | "release"
    emulated_by: str
    source: str
    defaults: Mapping[str, Any] = field(default_factory=dict)
    objects: tuple = ()
    app_version: str = ""


@functools.lru_cache(maxsize=1)
def data() -> dict[str, Any]:
    """The parsed data file (read once)."""
    loaded = yaml.safe_load(DATA_FILE.read_text()) or {}
    for section in ("annotation", "registry", "addons", "releases", "not_modelled"):
        if section not in loaded:
            raise WorkloadDataError(f"{DATA_FILE}: no '{section}'")
    return loaded


def _entries(section: str, kind: str, defaults_key: str) -> dict[str, Entry]:
    entries = {}
    for name, raw in (data()[section] or {}).items():
        missing = [key for key in ("emulated_by", "source", "objects") if not raw.get(key)]
        if missing:
            raise WorkloadDataError(f"{DATA_FILE}: {section}.{name} lacks {', '.join(missing)}")
        entries[name] = Entry(name, kind, str(raw["emulated_by"]).strip(), " ".join(str(raw["source"]).split()),
                              raw.get(defaults_key) or {}, tuple(raw["objects"]), str(raw.get("app_version") or ""))
    return entries


def addons() -> dict[str, Entry]:
    """The EKS add-ons with workloads, by add-on name."""
    return _entries("addons", "addon", "defaults")


def releases() -> dict[str, Entry]:
    """The helm releases with workloads, by release name."""
    return _entries("releases", "release", "chart_defaults")


def not_modelled() -> dict[str, str]:
    """Releases whose workloads are deliberately not created, with the reason."""
    return {name: " ".join(str(reason).split()) for name, reason in (data()["not_modelled"] or {}).items()}


def annotation_key() -> str:
    """The pod-template annotation that names what really does an add-on's job."""
    return str(data()["annotation"])


def split_version(version: str) -> tuple[str, str]:
    """An EKS add-on version split into its upstream release and EKS build:
    ``v1.19.5-eksbuild.1`` -> ``("v1.19.5", "eksbuild.1")`` (no build: ``""``)."""
    release, sep, build = version.partition("-eksbuild.")
    return (release, f"eksbuild.{build}") if sep else (version, "")


def lookup(values: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted ``path`` of ``values``, or the module's missing marker."""
    node: Any = values
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node


def is_missing(value: Any) -> bool:
    """Whether a rendered value was dropped (unset, or a condition that did not hold)."""
    return value is _MISSING


def _text(template: str, variables: Mapping[str, Any], values: Mapping[str, Any]) -> str:
    def replace(match: re.Match) -> str:
        name = match.group(1)
        if name in variables:
            return str(variables[name])
        found = lookup(values, name)
        if found is _MISSING or isinstance(found, (Mapping, list)):
            raise WorkloadDataError(f"{DATA_FILE}: ${{{name}}} is neither a variable nor a plain value")
        return str(found).lower() if isinstance(found, bool) else str(found)  # as a Go template prints it
    return _REFERENCE.sub(replace, template)


def render(template: Any, variables: Mapping[str, Any], values: Mapping[str, Any]) -> Any:
    """Fill one template in (the syntax is described at the top of the data file); returns the
    missing marker (:func:`is_missing`) for a value that is dropped."""
    if isinstance(template, str):
        return _text(template, variables, values)
    if isinstance(template, list):
        items = (render(item, variables, values) for item in template)
        return [item for item in items if item is not _MISSING]
    if not isinstance(template, Mapping):
        return copy.deepcopy(template)
    if "$when" in template:
        found = lookup(values, str(template["$when"]))
        if found is _MISSING or not found:
            return _MISSING
        rest = {k: v for k, v in template.items() if k != "$when"}
        return render(rest["$then"] if "$then" in rest else rest, variables, values)
    if "$value" in template:
        found = lookup(values, str(template["$value"]))
        if found is _MISSING or any(found == empty and type(found) is type(empty) for empty in _EMPTY):
            return render(template["default"], variables, values) if "default" in template else _MISSING
        return copy.deepcopy(found)
    rendered = {}
    for key, value in template.items():
        value = render(value, variables, values)
        if value is not _MISSING:
            rendered[key] = value
    return rendered


def annotate(obj: dict, text: str) -> dict:
    """``obj`` with the emulated-by annotation on its pod template (workload kinds only)."""
    if obj.get("kind") in WORKLOAD_KINDS:
        metadata = obj.setdefault("spec", {}).setdefault("template", {}).setdefault("metadata", {})
        metadata.setdefault("annotations", {})[annotation_key()] = text
    return obj


def _build(entry: Entry, variables: Mapping[str, Any], values: Mapping[str, Any]) -> list[dict]:
    objects = []
    for template in entry.objects:
        obj = render(template, variables, values)
        if obj is not _MISSING:
            objects.append(annotate(obj, entry.emulated_by))
    return objects


def addon_values(name: str, configuration: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """An add-on's values: its defaults merged with the add-on's ``configurationValues``."""
    return deep_merge(addons()[name].defaults, dict(configuration or {}))


def addon_objects(name: str, version: str, region: str, configuration: Mapping[str, Any] | None = None) -> list[dict]:
    """The objects of EKS add-on ``name`` at ``version`` (as the local AWS reports it) in ``region``."""
    if name not in addons():
        raise WorkloadDataError(f"no workloads for EKS add-on {name!r} in {DATA_FILE}")
    release, build = split_version(version)
    variables: dict[str, Any] = {"region": region, "version": version, "release": release, "build": build}
    variables["registry"] = _text(str(data()["registry"]), variables, {})
    return _build(addons()[name], variables, addon_values(name, configuration))


def release_values(name: str, installed: Mapping[str, Any]) -> dict[str, Any]:
    """A release's values as helm computes them: the chart's defaults merged with ``installed``."""
    return deep_merge(releases()[name].defaults, dict(installed or {}))


def release_objects(name: str, chart_version: str, namespace: str, installed: Mapping[str, Any]) -> list[dict]:
    """The workloads helm release ``name`` (chart ``chart_version``, in ``namespace``) renders with
    the values it was installed with (``installed``: the release's values file, filled in)."""
    if name not in releases():
        raise WorkloadDataError(f"no workloads for helm release {name!r} in {DATA_FILE}")
    entry = releases()[name]
    variables = {"chart_version": chart_version, "app_version": entry.app_version, "namespace": namespace,
                 "release_name": name}
    return _build(entry, variables, release_values(name, installed))


def describe(objects: list[dict]) -> str:
    """``Deployment kube-system/coredns, DaemonSet kube-system/aws-node``: the workloads of a list."""
    return ", ".join(f"{o['kind']} {o['metadata'].get('namespace', '')}/{o['metadata']['name']}"
                     for o in objects if o.get("kind") in WORKLOAD_KINDS)
