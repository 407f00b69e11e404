"""The cost estimate (eks_hub_runbook.cost) against its price table, the Pricing API path, and a run's spend."""

from __future__ import annotations

import datetime as dt
import json
import re

import boto3
import pytest
from botocore.stub import Stubber

from eks_hub_runbook import cost, instance_types
from eks_hub_runbook.aws import pricing, quotas
from eks_hub_runbook.params import resolve
from eks_hub_runbook.paths import TERRAFORM_DIR
from eks_hub_runbook.platform import facts

TABLE = instance_types.FIXED_PRICES


@pytest.fixture(autouse=True)
def _no_cached_prices():
    pricing._cached.cache_clear()
    yield
    pricing._cached.cache_clear()


def _rows(params) -> dict[str, dict]:
    return {r["item"]: r for r in cost.fixed_rows(params, cost.table_prices(params.region))}


def test_fixed_part_is_count_times_the_tables_unit_price():
    params = resolve(target="aws")
    rows = _rows(params)
    assert rows["EKS control plane"]["unit (USD/h)"] == TABLE["EKS control plane"].usd == 0.10
    assert rows["NAT gateway"]["unit (USD/h)"] == TABLE["NAT gateway"].usd
    core = rows["core node (m5.xlarge)"]
    assert core["count"] == cost.module_default("core_node_desired_size") == 2
    assert core["unit (USD/h)"] == instance_types.CATALOG["m5.xlarge"].price
    volume = rows["core node root volume (100 GiB gp3)"]
    assert volume["unit (USD/h)"] == pytest.approx(100 * 0.08 / 730, abs=1e-6)
    assert rows["EFS storage (GB)"]["count"] == cost.EFS_GB_ASSUMED and rows["EFS storage (GB)"]["USD/h"] == 0
    for row in rows.values():
        assert row["USD/h"] == pytest.approx(row["count"] * row["unit (USD/h)"], abs=1e-4), row["item"]
    estimate = cost.Estimate(params.region, "t", "", list(rows.values()))
    # 0.10 control plane + 0.045 NAT + 0.005 its address + 2 x 0.192 core nodes + 2 x 100 GiB gp3
    assert estimate.fixed_usd_per_hour == pytest.approx(0.10 + 0.045 + 0.005 + 0.384 + 0.0219, abs=1e-4)


def test_the_core_node_group_is_read_from_the_module_not_retyped():
    text = (TERRAFORM_DIR / "variables.tf").read_text()
    block = text[text.index('variable "core_node_instance_types"'):]
    assert re.search(r'default\s*=\s*\["([\w.]+)"', block).group(1) == cost.core_nodes(resolve(target="aws"))[0]
    with pytest.raises(KeyError, match="no variable 'not_a_variable'"):
        cost.module_default("not_a_variable")


def test_nat_gateways_by_mode_and_the_load_balancer_by_deployment_type():
    single, per_az = resolve(target="aws"), resolve(target="aws", nat_gateway_mode="per-az")
    assert cost.nat_gateways(single) == 1
    # one NAT gateway per public subnet, as terraform/vpc.tf creates them
    assert re.search(r'resource "aws_subnet" "public" \{\s*count = (\d+)', (TERRAFORM_DIR / "vpc.tf").read_text()).group(1) == "2"
    assert cost.nat_gateways(per_az) == cost.availability_zones() == 2
    assert _rows(per_az)["NAT gateway"]["USD/h"] == pytest.approx(2 * 0.045)
    assert _rows(per_az)["public IPv4 address (NAT)"]["count"] == 2
    assert "Network Load Balancer" not in _rows(single)
    typed = resolve(target="aws", auth="cognito", domain="hub.example.com")
    nlb = _rows(typed)["Network Load Balancer"]
    assert nlb["USD/h"] == 0.0225 and "LCU" in nlb["note"]


def test_profiles_cost_their_node_shared_by_the_users_it_holds():
    params = resolve(target="aws", profiles="gpu-time-slicing,data-engineering")
    rows = {r["profile"]: r for r in cost.profile_rows(params, cost.table_prices(params.region))}
    assert list(rows) == ["gpu-time-slicing", "data-engineering"]
    gpu = rows["gpu-time-slicing"]
    assert gpu["node"] == quotas.PROFILE_NODES["gpu-time-slicing"].instance_type == "g5.2xlarge"
    # one A10G advertised as `replicas` GPUs: that many users per node (CPU and memory leave room for more)
    assert gpu["users per node"] == instance_types.CATALOG["g5.2xlarge"].gpus * facts.time_slicing_replicas() == 4
    assert gpu["USD/h per user"] == pytest.approx(1.212 / 4, abs=1e-4)
    assert rows["data-engineering"]["users per node"] == 1  # 2 CPUs and 8 GiB on an m5.xlarge's ~3.6 CPUs


def test_profile_requests_follow_kubespawner():
    requests = cost.profile_requests({"kubespawner_override": {"cpu_guarantee": 1, "mem_guarantee": "4G",
                                                               "extra_resource_limits": {"nvidia.com/gpu": "1"}}})
    assert requests == {"cpu": 1, "memory": 4 * 2**30, "pods": 1, "nvidia.com/gpu": 1}
    assert cost.profile_requests({}, {"cpu_guarantee": 1, "mem_guarantee": "2G"})["memory"] == 2 * 2**30


def _product(usd: str) -> str:
    return json.dumps({"product": {"attributes": {}}, "terms": {"OnDemand": {"T1": {"priceDimensions": {
        "D1": {"unit": "Hrs", "pricePerUnit": {"USD": usd}}}}}}})


def _pricing_stub(answers: dict[str, list[str]], error: str = ""):
    client = boto3.client("pricing", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(client)
    if error:
        stub.add_client_error("get_products", error)
    for instance_type, usds in answers.items():
        stub.add_response("get_products", {"PriceList": [_product(u) for u in usds], "FormatVersion": "aws_v1"},
                          {"ServiceCode": "AmazonEC2", "Filters": pricing.filters(instance_type, "us-west-2"),
                           "FormatVersion": "aws_v1", "MaxResults": 10})
    stub.activate()
    return client, stub


def test_pricing_api_prices_replace_the_tables(monkeypatch):
    params = resolve(target="aws", profiles="gpu-time-slicing")
    client, stub = _pricing_stub({"g5.2xlarge": ["1.5", "0.0"], "m5.xlarge": ["0.25"]})
    monkeypatch.setattr(pricing, "client", lambda target: client)
    estimate = cost.estimate(params)
    stub.assert_no_pending_responses()
    assert estimate.source.startswith("AWS Pricing API (us-west-2, ")
    assert estimate.profile("gpu-time-slicing")["node (USD/h)"] == 1.5
    assert estimate.profile("gpu-time-slicing")["USD/h per user"] == pytest.approx(1.5 / 4)
    core = next(r for r in estimate.fixed if r["item"] == "core node (m5.xlarge)")
    assert core["USD/h"] == pytest.approx(0.5)


def test_filters_name_the_region_by_its_pricing_location():
    fields = {f["Field"]: f["Value"] for f in pricing.filters("g5.2xlarge", "eu-west-1")}
    assert fields == {"instanceType": "g5.2xlarge", "location": "EU (Ireland)", "operatingSystem": "Linux",
                      "tenancy": "Shared", "preInstalledSw": "NA", "capacitystatus": "Used"}


def test_an_unanswering_pricing_api_falls_back_to_the_table_and_says_so(monkeypatch):
    client, _ = _pricing_stub({}, error="AccessDeniedException")
    monkeypatch.setattr(pricing, "client", lambda target: client)
    estimate = cost.estimate(resolve(target="aws", region="eu-west-1", profiles="gpu-time-slicing"))
    assert estimate.source == "price table (us-west-2, 2026-11-28)" == str(instance_types.PRICES_SOURCE)
    assert "AccessDeniedException" in estimate.note and "us-west-2's prices; eu-west-1's may differ" in estimate.note
    assert estimate.profile("gpu-time-slicing")["node (USD/h)"] == instance_types.CATALOG["g5.2xlarge"].price
    assert "price table (us-west-2, 2026-11-28)" in estimate.summary("gpu-time-slicing")


def test_a_product_without_an_hourly_price_is_no_price(monkeypatch):
    client = boto3.client("pricing", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(client)
    stub.add_response("get_products", {"PriceList": []})
    stub.activate()
    with pytest.raises(pricing.PricingUnavailable, match="no on-demand Linux price for g5.2xlarge"):
        pricing.on_demand_price(client, "g5.2xlarge", "us-west-2")


@pytest.mark.sandbox
def test_the_sandbox_has_no_pricing_api_and_shows_the_table(aws_sandbox):
    estimate = cost.estimate(resolve(target="sandbox", profiles="gpu-time-slicing"))
    assert estimate.source == str(instance_types.PRICES_SOURCE)
    assert "the Pricing API did not answer" in estimate.note


def test_spend_is_the_fixed_part_over_the_lifetime_plus_the_nodes_hours():
    params = resolve(target="aws")
    ended = dt.datetime(2026, 12, 1, 12, tzinfo=dt.timezone.utc)
    started = ended - dt.timedelta(hours=2)
    nodes = [cost.NodeRun("ip-10-1-0-5", "g5.2xlarge", "gpu-ts", ended - dt.timedelta(minutes=30)),
             cost.NodeRun("ip-10-1-0-6", "m5.xlarge", "cpu", started, ended - dt.timedelta(hours=1))]
    pricing._cached.cache_clear()
    spent = cost.spend(params, started, nodes, ended)
    fixed = cost.Estimate(params.region, "", "", cost.fixed_rows(params, cost.table_prices(params.region))).fixed_usd_per_hour
    assert spent.usd == pytest.approx(2 * fixed + 0.5 * 1.212 + 1 * 0.192, abs=1e-3)
    node_items = [i for i in spent.items if i["part"] == "node"]
    assert [(i["hours"], i["instance type"]) for i in node_items] == [(0.5, "g5.2xlarge"), (1.0, "m5.xlarge")]
    recorded = spent.as_dict()
    assert recorded["usd"] == round(spent.usd, 2) and recorded["source"] == spent.source
    assert json.loads(json.dumps(recorded)) == recorded
    assert "2.00 h" in spent.summary() and "2 Karpenter node(s)" in spent.summary()


def test_spend_without_a_cluster_counts_only_nodes():
    spent = cost.spend(resolve(target="aws"), None, [], dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc))
    assert spent.usd == 0 and "lifetime is unknown" in spent.note
