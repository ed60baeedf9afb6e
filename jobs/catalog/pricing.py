"""Refresh ``prices.json`` from the AWS Price List Query API (boto3 ``pricing``, service code AmazonSageMaker).

GetProducts returns ``PriceList``, a list of JSON *strings*, one per product (SKU): ``product.attributes`` says
what it is (``regionCode``, ``instanceName``, ``component`` "Training", ``usagetype`` like
``USE1-Train:ml.p4d.24xlarge``) and ``terms.OnDemand.<offer>.priceDimensions.<rate>.pricePerUnit.USD`` what
an hour costs. Spot usage types (``...Train-Spot...``) and other components (hosting, notebooks, processing)
are skipped. The pricing client is passed in (its API lives in us-east-1 and ap-south-1 whatever region is
priced); nothing here creates AWS clients.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import date
from pathlib import Path

from smjobs.catalog import PRICES_PATH, Price

SERVICE_CODE = "AmazonSageMaker"
API_SOURCE = "AWS Price List Query API (GetProducts, ServiceCode AmazonSageMaker, component Training, OnDemand, USD)"


def _training_instance(attributes: dict) -> str | None:
    """The instance type a product prices for training, or None when it is not on-demand training."""
    usage = attributes.get("usagetype", "")
    if "Spot" in usage:
        return None
    if attributes.get("component") != "Training" and "Train:" not in usage:
        return None
    name = attributes.get("instanceName") or attributes.get("instanceType") or usage.partition("Train:")[2]
    return name if name.startswith("ml.") else None


def _hourly_usd(terms: dict) -> float | None:
    for offer in terms.get("OnDemand", {}).values():
        for dimension in offer.get("priceDimensions", {}).values():
            usd = dimension.get("pricePerUnit", {}).get("USD")
            if usd is not None and dimension.get("unit", "Hrs").lower().startswith("hr"):
                return float(usd)
    return None


def parse_price_list(price_list: Iterable[str], region: str) -> dict[str, float]:
    """Instance type -> USD per hour from GetProducts' ``PriceList`` entries for ``region``."""
    found: dict[str, float] = {}
    for entry in price_list:
        item = json.loads(entry)
        attributes = item.get("product", {}).get("attributes", {})
        if attributes.get("regionCode", region) != region:
            continue
        name = _training_instance(attributes)
        usd = _hourly_usd(item.get("terms", {}))
        if name and usd:  # a zero price is a free-tier or placeholder SKU, not a training rate
            found[name] = usd
    return found


def fetch_prices(pricing_client, region: str) -> dict[str, float]:
    """Every on-demand SageMaker training price in ``region``, following NextToken."""
    filters = [{"Type": "TERM_MATCH", "Field": "regionCode", "Value": region},
               {"Type": "TERM_MATCH", "Field": "component", "Value": "Training"}]
    found: dict[str, float] = {}
    token = None
    while True:
        kwargs = {"ServiceCode": SERVICE_CODE, "Filters": filters, "FormatVersion": "aws_v1", "MaxResults": 100}
        if token:
            kwargs["NextToken"] = token
        page = pricing_client.get_products(**kwargs)
        found.update(parse_price_list(page.get("PriceList", []), region))
        token = page.get("NextToken")
        if not token:
            return found


def refresh(pricing_client, region: str, instance_types: Iterable[str], path: Path = PRICES_PATH,
            today: date | None = None) -> tuple[dict[str, Price], list[str]]:
    """Replace ``region``'s prices in ``path`` with the API's, for the catalog's ``instance_types``.

    Prices the API does not return are kept with their old source and date. Every training type the API prices in
    ``region`` (not only the catalog's) is recorded as what the region offers. Returns (new prices, types still
    without a price)."""
    fetched = fetch_prices(pricing_client, region)
    data = json.loads(path.read_text())
    old = data["regions"].get(region, {})
    stamp = (today or date.today()).isoformat()
    table: dict[str, dict] = {}
    for name in sorted(instance_types):
        if name in fetched:
            table[name] = {"usd_per_hour": fetched[name], "source": f"{API_SOURCE}, region {region}", "retrieved": stamp}
        elif name in old:
            table[name] = old[name]
    data["regions"][region] = table
    if fetched:  # the region's training SKUs: what it offers (an empty answer proves nothing)
        data.setdefault("offered", {})[region] = {"instance_types": sorted(fetched), "source": f"{API_SOURCE}, region {region}",
                                                  "retrieved": stamp}
    path.write_text(json.dumps(data, indent=1) + "\n")
    missing = [name for name in sorted(instance_types) if name not in table]
    return {name: Price(**fields) for name, fields in table.items() if name in fetched}, missing
