"""What a deployment costs: an estimate per hour before anything is created, and a run's spend.

The estimate (:func:`estimate`) has two parts:

- the **fixed part**, billed from the apply to the destroy whether anyone works or not: the EKS
  control plane, the NAT gateway(s) and their public IPv4 addresses (one per AZ with
  ``nat_gateway_mode = per-az``), the Network Load Balancer of types 2/3, the core managed node
  group and its root volumes, EFS storage. Counts and sizes are read from the Terraform module
  (``terraform/variables.tf`` defaults and the variables the workspace writes), not retyped;
- **per profile**: the node one user of the profile needs (the cheapest instance type of its
  NodePool that fits, as Karpenter picks it: :data:`eks_hub_runbook.aws.quotas.PROFILE_NODES`),
  how many users share such a node (the profile's requests against what the node leaves to user
  pods, time-slicing replicas included), and so the price per user-hour.

Node prices come from the AWS Pricing API where it answers (:mod:`.aws.pricing`), else from the
price table of the instance catalog (:data:`.instance_types.PRICES_SOURCE`); the estimate says
which. The other prices are the table's. Traffic-dependent charges (NAT data, LCUs) are left out
and named. On-demand prices throughout: with ``gpu_spot`` GPU nodes may cost less.

The spend (:func:`spend`) multiplies the fixed part by the deployment's lifetime and each
Karpenter node by the hours it ran.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from . import instance_types as catalog
from .aws import pricing, quotas
from .params import DeploymentParameters

EFS_GB_ASSUMED = 0  # the estimate's EFS storage: nothing stored yet (it grows with the users' files)


# --------------------------------------------------------------------------- the Terraform module's values


@functools.cache
def module_default(name: str) -> Any:
    """The default of the root module's variable ``name`` (``terraform/variables.tf``), as JSON reads it."""
    from .paths import TERRAFORM_DIR

    text = (TERRAFORM_DIR / "variables.tf").read_text()
    match = re.search(rf'^variable "{re.escape(name)}" {{(.*?)^}}', text, re.MULTILINE | re.DOTALL)
    if match is None:
        raise KeyError(f"terraform/variables.tf has no variable {name!r}")
    default = re.search(r"^\s*default\s*=\s*(.+)$", match.group(1), re.MULTILINE)
    if default is None:
        raise KeyError(f"variable {name!r} of terraform/variables.tf has no default")
    return json.loads(default.group(1).strip())


def module_value(params: DeploymentParameters, name: str) -> Any:
    """What the module gets for ``name``: the tfvars the workspace writes for ``params``, else its default."""
    from .terraform.variables import render_variables

    rendered = render_variables(params)
    return rendered[name] if name in rendered else module_default(name)


def availability_zones() -> int:
    """How many AZs the VPC spans: one public subnet each (``public_subnet_cidrs``)."""
    return len(module_default("public_subnet_cidrs"))


def nat_gateways(params: DeploymentParameters) -> int:
    """NAT gateways the module creates: one (``single``) or one per AZ (``per-az``)."""
    return availability_zones() if module_value(params, "nat_gateway_mode") == "per-az" else 1


def core_nodes(params: DeploymentParameters) -> tuple[str, int, int]:
    """The core managed node group: (instance type, desired count, root volume GiB), as the module sets it."""
    return (module_value(params, "core_node_instance_types")[0], int(module_value(params, "core_node_desired_size")),
            int(module_value(params, "core_node_disk_size")))


# --------------------------------------------------------------------------- prices


@dataclass(frozen=True)
class Prices:
    """USD/h per instance type, and where they come from."""

    nodes: dict[str, float]
    source: str
    note: str = ""

    def of(self, instance_type: str) -> float:
        """The price of ``instance_type``; a type the source lacks is an error naming the fix."""
        if instance_type not in self.nodes:
            raise KeyError(f"no price for {instance_type}: add it to eks_hub_runbook/instance_types.py CATALOG")
        return self.nodes[instance_type]


def table_prices(region: str, reason: str = "") -> Prices:
    """The catalog's prices, with its region and date (and a note when ``region`` is another)."""
    source = catalog.PRICES_SOURCE
    notes = [f"the Pricing API did not answer ({reason})"] if reason else []
    if region != source.region:
        notes.append(f"the table holds {source.region}'s prices; {region}'s may differ")
    return Prices({name: t.price for name, t in catalog.CATALOG.items()}, str(source), "; ".join(notes))


def prices(params: DeploymentParameters, instance_types: Iterable[str]) -> Prices:
    """Node prices from the AWS Pricing API when it answers for every type, else the price table."""
    types = sorted(set(instance_types))
    try:
        found = pricing.on_demand_prices(params.target, params.region, types)
    except pricing.PricingUnavailable as exc:
        return table_prices(params.region, str(exc))
    today = dt.datetime.now(dt.timezone.utc).date().isoformat()
    table = table_prices(params.region)
    return Prices({**table.nodes, **found}, f"AWS Pricing API ({params.region}, {today})",
                  f"instance types from the API; the other items from the {table.source}")


# --------------------------------------------------------------------------- profiles


def _bytes(value: Any) -> Fraction:
    """A KubeSpawner memory value (``"8G"``: binary units K, M, G, T as its ByteSpecification) in bytes."""
    text = str(value).strip()
    units = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
    if text and text[-1].upper() in units:
        return Fraction(text[:-1]) * units[text[-1].upper()]
    return Fraction(text or 0)


def profile_requests(profile: Mapping[str, Any], defaults: Mapping[str, Any] | None = None) -> dict[str, Fraction]:
    """What KubeSpawner requests for one user of ``profile`` (its override, else ``defaults``: cpu and
    memory guarantees, extra resources), plus one pod."""
    from .platform.scheduling import quantity

    override = {**(defaults or {}), **(profile.get("kubespawner_override") or {})}
    requests = {"cpu": Fraction(str(override.get("cpu_guarantee") or 0)), "memory": _bytes(override.get("mem_guarantee") or 0),
                "pods": Fraction(1)}
    extra = {**(override.get("extra_resource_limits") or {}), **(override.get("extra_resource_guarantees") or {})}
    requests.update({name: quantity(value) for name, value in extra.items()})
    return {name: value for name, value in requests.items() if value}


@functools.cache
def _cluster_model() -> tuple[list[dict], dict[str, str], str]:
    """The platform's NodePools, the device plugin's configurations (text) and its default config."""
    from .platform import facts

    return facts.nodepool_objects(), facts.device_plugin_config_texts(), facts.default_device_plugin_config()


def users_per_node(profile: Mapping[str, Any], instance_type: str, defaults: Mapping[str, Any] | None = None) -> int:
    """How many users of ``profile`` fit on one ``instance_type`` node of the profile's NodePool: the
    scheduling model's room for user pods (time-slicing replicas, MIG slices) over one user's requests."""
    from .platform import scheduling

    pools, configs, default = _cluster_model()
    selector = (profile.get("kubespawner_override") or {}).get("node_selector") or {}
    for pool in pools:
        labels = ((pool["spec"]["template"].get("metadata") or {}).get("labels") or {})
        if selector and all(labels.get(k) == v for k, v in selector.items()):
            node = next((c for c in scheduling.candidates(pool, configs, default) if c.instance_type == instance_type), None)
            if node is None:
                raise ValueError(f"NodePool {pool['metadata']['name']} does not offer {instance_type} "
                                 f"(profile {profile['slug']}): fix PROFILE_NODES in aws/quotas.py")
            requests = profile_requests(profile, defaults)
            return max(0, min(math.floor(node.available.get(name, 0) / amount) for name, amount in requests.items()))
    raise ValueError(f"profile {profile.get('slug')} selects {selector}, which no NodePool of terraform/manifests/karpenter labels")


def _spawner_defaults() -> dict[str, Any]:
    """The hub's default guarantees (``singleuser.cpu/memory``) in KubeSpawner's terms."""
    from .platform.templating import load_yaml
    from .platform.values import JUPYTERHUB_VALUES_DIR

    singleuser = (load_yaml(JUPYTERHUB_VALUES_DIR / "base.yaml") or {}).get("singleuser") or {}
    return {"cpu_guarantee": (singleuser.get("cpu") or {}).get("guarantee"),
            "mem_guarantee": (singleuser.get("memory") or {}).get("guarantee")}


# --------------------------------------------------------------------------- the estimate


def _row(item: str, count: float, unit: float, note: str = "") -> dict[str, Any]:
    return {"item": item, "count": count, "unit (USD/h)": round(unit, 6), "USD/h": round(count * unit, 4), "note": note}


def fixed_rows(params: DeploymentParameters, node_prices: Prices) -> list[dict[str, Any]]:
    """The fixed part: what runs from the apply to the destroy, one row per item."""
    fixed = catalog.FIXED_PRICES
    nats = nat_gateways(params)
    core_type, core_count, core_disk = core_nodes(params)
    rows = [
        _row("EKS control plane", 1, fixed["EKS control plane"].usd_per_hour),
        _row("NAT gateway", nats, fixed["NAT gateway"].usd_per_hour,
             f"nat_gateway_mode {params.nat_gateway_mode}; excluded: {fixed['NAT gateway'].excludes}"),
        _row("public IPv4 address (NAT)", nats, fixed["public IPv4 address"].usd_per_hour),
    ]
    if params.uses_domain:
        rows.append(_row("Network Load Balancer", 1, fixed["Network Load Balancer"].usd_per_hour,
                         f"types 2/3; excluded: {fixed['Network Load Balancer'].excludes}"))
    rows += [
        _row(f"core node ({core_type})", core_count, node_prices.of(core_type), "core managed node group, desired size"),
        _row(f"core node root volume ({core_disk} GiB gp3)", core_count, core_disk * fixed["EBS gp3 storage"].usd_per_hour),
        _row("EFS storage (GB)", EFS_GB_ASSUMED, fixed["EFS storage (Standard)"].usd_per_hour,
             f"{EFS_GB_ASSUMED} GB assumed: billed per GB stored (${fixed['EFS storage (Standard)'].usd:.2f}/GB-month), grows with usage"),
    ]
    return rows


def profile_rows(params: DeploymentParameters, node_prices: Prices) -> list[dict[str, Any]]:
    """Per chosen profile: the node one user needs, its price, users per node and USD/h per user."""
    from .platform import facts

    profiles = {p["slug"]: p for p in facts.profile_list()}
    defaults = _spawner_defaults()
    rows = []
    for slug in quotas.chosen_profiles(params):
        node = quotas.PROFILE_NODES[slug].instance_type
        users = users_per_node(profiles[slug], node, defaults)
        price = node_prices.of(node)
        rows.append({"profile": slug, "node": node, "node (USD/h)": round(price, 4), "users per node": users,
                     "USD/h per user": round(price / users, 4) if users else None})
    return rows


@dataclass
class Estimate:
    """The estimated cost per hour of a deployment: the fixed part and the cost per profile."""

    region: str
    source: str
    note: str
    fixed: list[dict[str, Any]]
    profiles: list[dict[str, Any]] = field(default_factory=list)

    @property
    def fixed_usd_per_hour(self) -> float:
        """USD per hour of the fixed part (running with nobody logged in)."""
        return round(sum(r["USD/h"] for r in self.fixed), 4)

    def profile(self, slug: str) -> dict[str, Any]:
        """The row of profile ``slug``."""
        return next(r for r in self.profiles if r["profile"] == slug)

    def summary(self, demo_profile: str | None = None) -> str:
        """One sentence: the fixed part per hour and per month, and with one node of the demo profile."""
        text = (f"The deployment costs about ${self.fixed_usd_per_hour:.2f}/h with nobody logged in "
                f"(${self.fixed_usd_per_hour * catalog.HOURS_PER_MONTH:,.0f} per month of 730 h)")
        row = next((r for r in self.profiles if r["profile"] == demo_profile), None)
        if row:
            text += (f"; with one {row['node']} node for `{row['profile']}` (up to {row['users per node']} users) "
                     f"about ${self.fixed_usd_per_hour + row['node (USD/h)']:.2f}/h")
        return text + f". Prices: {self.source}" + (f"; {self.note}." if self.note else ".")

    def chart(self):
        """A bar chart (a matplotlib Figure): USD per hour per user of each profile, the fixed part as a line."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        from matplotlib.figure import Figure

        rows = [r for r in self.profiles if r["USD/h per user"] is not None]
        figure = Figure(figsize=(7, 0.45 * len(rows) + 1.4), dpi=100)
        axes = figure.add_subplot()
        labels = [f"{r['profile']} ({r['node']}, {r['users per node']} per node)" for r in rows]
        values = [r["USD/h per user"] for r in rows]
        bars = axes.barh(labels, values, color="#1f77b4")
        axes.bar_label(bars, labels=[f"${v:.2f}" for v in values], padding=2)
        axes.axvline(self.fixed_usd_per_hour, color="#d62728", linestyle="--",
                     label=f"fixed part ${self.fixed_usd_per_hour:.2f}/h")
        axes.invert_yaxis()
        axes.set_xscale("log")
        axes.set_xlabel("USD per hour per user (node price / users per node), log scale")
        axes.legend(loc="upper right")
        axes.margins(x=0.25)
        figure.tight_layout()
        return figure

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: the rows, the fixed total and the source."""
        return {"usd_per_hour_fixed": self.fixed_usd_per_hour, "fixed": self.fixed, "profiles": self.profiles,
                "source": self.source, "note": self.note, "region": self.region}


def estimate(params: DeploymentParameters) -> Estimate:
    """The estimated cost per hour of ``params``' deployment (nothing is created; the Pricing API is asked
    on AWS and quickly given up on where it does not answer)."""
    core_type, _, _ = core_nodes(params)
    types = [core_type, *(quotas.PROFILE_NODES[p].instance_type for p in quotas.chosen_profiles(params))]
    node_prices = prices(params, types)
    return Estimate(params.region, node_prices.source, node_prices.note,
                    fixed_rows(params, node_prices), profile_rows(params, node_prices))


# --------------------------------------------------------------------------- what a run spent


@dataclass(frozen=True)
class NodeRun:
    """A node Karpenter launched, and when it ran (``ended`` None: still running)."""

    name: str
    instance_type: str
    pool: str
    started: dt.datetime
    ended: dt.datetime | None = None


def _hours(start: dt.datetime, end: dt.datetime) -> float:
    return max((end - start).total_seconds(), 0.0) / 3600


@dataclass
class Spend:
    """A run's estimated spend: the fixed part over the deployment's lifetime, plus the nodes that ran."""

    started: dt.datetime | None
    ended: dt.datetime
    source: str
    items: list[dict[str, Any]]
    note: str = ""

    @property
    def usd(self) -> float:
        """The estimated total in USD."""
        return round(sum(i["USD"] for i in self.items), 4)

    def summary(self) -> str:
        """One sentence: the total, the lifetime and the nodes."""
        hours = _hours(self.started, self.ended) if self.started else 0.0
        nodes = sum(1 for i in self.items if i["part"] == "node")
        return (f"Estimated spend of this run: ${self.usd:.2f} (the fixed part over {hours:.2f} h"
                f"{f', plus {nodes} Karpenter node(s)' if nodes else ''}). Prices: {self.source}."
                + (f" {self.note}" if self.note else ""))

    def as_dict(self) -> dict[str, Any]:
        """What ``run.json`` records as ``estimated_cost``."""
        return {"usd": round(self.usd, 2), "started_at": self.started.isoformat() if self.started else None,
                "ended_at": self.ended.isoformat(), "items": self.items, "source": self.source, "note": self.note}


def spend(params: DeploymentParameters, started: dt.datetime | None, nodes: Iterable[NodeRun],
          ended: dt.datetime | None = None) -> Spend:
    """The spend of a deployment that lived from ``started`` (its cluster's creation) to ``ended`` (now),
    with the Karpenter ``nodes`` that ran. Without a start (the cluster was already gone) only the nodes count."""
    ended = ended or dt.datetime.now(dt.timezone.utc)
    nodes = list(nodes)
    core_type, _, _ = core_nodes(params)
    node_prices = prices(params, [core_type, *(n.instance_type for n in nodes)])
    items = []
    lifetime = _hours(started, ended) if started else 0.0
    for row in fixed_rows(params, node_prices) if started else []:
        if row["USD/h"]:
            items.append({"part": "fixed", "item": row["item"], "count": row["count"], "hours": round(lifetime, 3), "USD/h": row["USD/h"],
                          "USD": round(row["USD/h"] * lifetime, 4)})
    for node in nodes:
        hours = _hours(node.started, node.ended or ended)
        price = node_prices.of(node.instance_type)
        items.append({"part": "node", "item": f"{node.pool} node {node.name}", "count": 1, "hours": round(hours, 3), "USD/h": price,
                      "USD": round(price * hours, 4), "instance type": node.instance_type})
    note = ("Nodes removed before this cleanup that neither the cluster nor EC2 still lists are not counted."
            if started else "The cluster was already gone: its lifetime is unknown, only nodes are counted.")
    return Spend(started, ended, node_prices.source, items, note)
