"""``smjobs instances`` and ``smjobs prices``: the instance and price catalogs, and refreshing prices from AWS."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from smjobs.cli.shared import (
    CATALOG,
    Command,
    EndpointOpt,
    Group,
    OutputOpt,
    ProfileOpt,
    app,
    aws_call,
    command,
    configured,
    emit,
    json_output,
    out,
)
from smjobs.tables import print_table


@command("instances", panel=CATALOG)
def instances_command(region: Annotated[str | None, typer.Option("--region", help="Prices of this region (default: the catalog's).")] = None,
                      output: OutputOpt = "text") -> None:
    """The GPU instance catalog: GPUs, memory, interconnect, distributed libraries and on-demand price."""
    from rich.table import Table

    from smjobs.catalog import instances, prices, supported_libraries

    catalog, price_table = instances(), prices()
    region = region or price_table.default_region
    if json_output():
        from smjobs.cli.schemas import InstancesOutput, InstanceTypeRow

        rows = []
        for name, spec in catalog.types.items():
            price = price_table.price(name, region)
            rows.append(InstanceTypeRow(
                instance_type=name, gpu_count=spec.gpu_count, gpu_model=spec.gpu_model, gpu_memory_gb=spec.gpu_memory_gb,
                gpu_memory_gib=spec.gpu_memory_gib, memory_gib=spec.memory_gib, vcpus=spec.vcpus,
                interconnect=catalog.gpu(name).interconnect if spec.gpu_count > 1 else None, efa=spec.efa,
                network_gbps=spec.network_gbps, libraries=list(supported_libraries(name)),
                usd_per_hour=price.usd_per_hour if price else None))
        emit(InstancesOutput(catalog_retrieved=str(catalog.retrieved), region=region, instance_types=rows,
                             excluded=list(catalog.excluded)))
        return
    table = Table(title=f"GPU training instances (catalog read {catalog.retrieved}; prices {region}, USD/h)")
    for column in ("instance type", "GPUs", "GB/GPU (GiB reported)", "host GiB", "vCPUs", "interconnect", "EFA", "Gbps", "libraries", "USD/h"):
        table.add_column(column)
    for name, spec in catalog.types.items():
        gpu = catalog.gpu(name)
        price = price_table.price(name, region)
        table.add_row(name, f"{spec.gpu_count} x {spec.gpu_model.removeprefix('NVIDIA ')}", f"{spec.gpu_memory_gb:g} ({spec.gpu_memory_gib:.1f})",
                      f"{spec.memory_gib:g}", str(spec.vcpus), gpu.interconnect if spec.gpu_count > 1 else "-",
                      "yes" if spec.efa else "no", f"{spec.network_gbps:g}", ", ".join(supported_libraries(name)),
                      f"{price.usd_per_hour:.4g}" if price else "-")
    print_table(out, table)
    out.print(f"excluded: {', '.join(catalog.excluded)} (`smjobs validate` says why)", highlight=False)


prices_app = typer.Typer(cls=Group, no_args_is_help=True, help="On-demand training prices: show them, refresh them from AWS.")
app.add_typer(prices_app, name="prices", rich_help_panel=CATALOG)


def _pricing_client(endpoint_url: str | None, profile: str | None = None):
    """The Price List API answers in us-east-1 (and ap-south-1) for every priced region; ``profile`` gives the
    credentials."""
    from smjobs.aws.context import AwsContext

    return AwsContext.create(region="us-east-1", endpoint_url=endpoint_url, profile=profile).client("pricing")


@prices_app.command("refresh", cls=Command)
def prices_refresh(
    region: Annotated[str | None, typer.Option("--region", help="Region whose prices to fetch (default: AWS_REGION, then the "
                                               "profile's in the AWS config, then us-east-1).")] = None,
    catalog: Annotated[Path | None, typer.Option("--catalog", help="prices.json to update (default: the shipped one).")] = None,
    endpoint_url: EndpointOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """Update the price catalog from the AWS Price List API (needs pricing:GetProducts)."""
    from smjobs.catalog import PRICES_PATH, instances, load_prices
    from smjobs.catalog.pricing import refresh

    path = catalog or PRICES_PATH
    region = region or configured(profile) or "us-east-1"
    new, missing = aws_call(lambda: refresh(_pricing_client(endpoint_url, profile), region, instances().types, path))
    out.print(f"{len(new)} prices for {region} from the Price List API written to {path}", markup=False)
    offered = load_prices(path).offered.get(region)
    if offered is not None:
        out.print(f"{len(offered.instance_types)} training instance types offered in {region} recorded; validation "
                  "refuses the others there", markup=False)
    if missing:
        out.print(f"still without a price in {region}: {', '.join(missing)}", highlight=False)


@prices_app.command("show", cls=Command)
def prices_show(region: Annotated[str | None, typer.Option("--region", help="Region (default: the catalog's).")] = None) -> None:
    """List the catalog's prices with where and when each was read."""
    from rich.table import Table

    from smjobs.catalog import instances, prices

    catalog = prices()
    region = region or catalog.default_region
    table = Table(title=f"on-demand training prices, {region}, USD per instance-hour")
    for column in ("instance type", "GPUs", "USD/h", "read", "source"):
        table.add_column(column)
    for name, spec in instances().types.items():
        price = catalog.price(name, region)
        table.add_row(name, f"{spec.gpu_count} x {spec.gpu_model.removeprefix('NVIDIA ')}",
                      f"{price.usd_per_hour:.4g}" if price else "-", (price.retrieved or "undated") if price else "-",
                      price.source if price else "no price: run `smjobs prices refresh`")
    print_table(out, table)
