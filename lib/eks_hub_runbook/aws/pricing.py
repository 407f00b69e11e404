"""On-demand EC2 prices from the AWS Pricing API, for the cost estimate.

The Pricing API has endpoints in us-east-1 (used here) and ap-south-1 only, and answers for
every region: ``get_products`` for ``AmazonEC2`` filtered on the instance type, the region's
location name, Linux, shared tenancy, no pre-installed software and used capacity gives one
product per type whose on-demand term holds the hourly price.

Prices only inform, so the client is quick (one attempt, short timeouts): where the API cannot
be reached (no credentials, no permission ``pricing:GetProducts``, a stand-in for AWS that has
no Pricing API) :func:`on_demand_prices` raises :class:`PricingUnavailable` at once and the
estimate uses the price table (:data:`eks_hub_runbook.instance_types.PRICES_SOURCE`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from . import session

PRICING_REGION = "us-east-1"
# Two quick attempts (botocore's ``max_attempts`` counted retries: the same policy as before): a price
# only informs and has a fallback table, so it must not cost the minute of backoff session's 9 attempts can.
_QUICK = Config(retries={"total_max_attempts": 2, "mode": "standard"}, connect_timeout=3, read_timeout=10)

# Region code -> the Pricing API's ``location`` attribute (for the regions params.REGIONS offers).
LOCATIONS: dict[str, str] = {
    "us-east-1": "US East (N. Virginia)", "us-east-2": "US East (Ohio)",
    "us-west-1": "US West (N. California)", "us-west-2": "US West (Oregon)",
    "ca-central-1": "Canada (Central)", "eu-west-1": "EU (Ireland)", "eu-west-2": "EU (London)",
    "eu-west-3": "EU (Paris)", "eu-central-1": "EU (Frankfurt)", "eu-north-1": "EU (Stockholm)",
    "ap-south-1": "Asia Pacific (Mumbai)", "ap-northeast-1": "Asia Pacific (Tokyo)",
    "ap-northeast-2": "Asia Pacific (Seoul)", "ap-southeast-1": "Asia Pacific (Singapore)",
    "ap-southeast-2": "Asia Pacific (Sydney)", "sa-east-1": "South America (Sao Paulo)",
}


class PricingUnavailable(Exception):
    """The Pricing API did not answer with a price (the reason is the message)."""


def client(target: str):
    """A Pricing API client on ``target`` (its endpoint is in us-east-1) with two quick attempts."""
    return session.client("pricing", target, PRICING_REGION, config=_QUICK)


def filters(instance_type: str, region: str) -> list[dict[str, str]]:
    """The ``get_products`` filters that select one Linux on-demand product of ``instance_type`` in ``region``."""
    if region not in LOCATIONS:
        raise PricingUnavailable(f"no Pricing API location name for region {region}")
    values = {"instanceType": instance_type, "location": LOCATIONS[region], "operatingSystem": "Linux",
              "tenancy": "Shared", "preInstalledSw": "NA", "capacitystatus": "Used"}
    return [{"Type": "TERM_MATCH", "Field": field, "Value": value} for field, value in values.items()]


def _hourly(product: dict) -> float | None:
    """The product's on-demand USD per hour (None when it has no hourly on-demand price)."""
    for term in (product.get("terms", {}).get("OnDemand") or {}).values():
        for dimension in (term.get("priceDimensions") or {}).values():
            usd = (dimension.get("pricePerUnit") or {}).get("USD")
            if usd is not None and str(dimension.get("unit", "")).lower().startswith("hr"):
                return float(usd)
    return None


def on_demand_price(pricing, instance_type: str, region: str) -> float:
    """The on-demand Linux price (USD/h) of ``instance_type`` in ``region``, asked of the ``pricing`` client.

    Of several matching products (license models) the lowest non-zero price is the one EC2
    bills a Linux instance. Raises :class:`PricingUnavailable`.
    """
    try:
        answer = pricing.get_products(ServiceCode="AmazonEC2", Filters=filters(instance_type, region),
                                      FormatVersion="aws_v1", MaxResults=10)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code") or "ClientError")
        raise PricingUnavailable(f"HTTP {code}" if code.isdigit() else code) from None
    except BotoCoreError as exc:  # no credentials, no endpoint: the class says which, without a URL
        raise PricingUnavailable(exc.__class__.__name__) from None
    try:
        prices = [_hourly(json.loads(item) if isinstance(item, str) else item) for item in answer.get("PriceList") or []]
    except (ValueError, AttributeError) as exc:
        raise PricingUnavailable(f"unreadable price list: {exc}") from None
    prices = [p for p in prices if p]
    if not prices:
        raise PricingUnavailable(f"no on-demand Linux price for {instance_type} in {region}")
    return min(prices)


@functools.lru_cache(maxsize=16)
def _cached(target: str, region: str, instance_types: tuple[str, ...]) -> dict[str, float]:
    try:
        pricing = client(target)
    except BotoCoreError as exc:
        raise PricingUnavailable(exc.__class__.__name__) from None
    return {name: on_demand_price(pricing, name, region) for name in instance_types}


def on_demand_prices(target: str, region: str, instance_types: Iterable[str]) -> dict[str, float]:
    """USD/h per instance type from the Pricing API (asked once per process and set of types).

    All or nothing: the first type without a price raises :class:`PricingUnavailable`, so an
    estimate never mixes the API's prices with the table's for the nodes.
    """
    return dict(_cached(target, region, tuple(sorted(set(instance_types)))))
