"""Prices: the shipped catalog records a source and date for every price; `prices refresh` reads the Price
List API (a botocore Stubber checks each request against the service model and answers from a fixture)."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber
from typer.testing import CliRunner

from smjobs import cli
from smjobs.catalog import PRICES_PATH, instances, load_prices, prices
from smjobs.catalog.pricing import parse_price_list, refresh
from smjobs.cli import catalog as cli_catalog

FIXTURE = json.loads((Path(__file__).parents[2] / "fixtures" / "pricing" / "get_products_pages.json").read_text())
FILTERS = [{"Type": "TERM_MATCH", "Field": "regionCode", "Value": "us-east-1"},
           {"Type": "TERM_MATCH", "Field": "component", "Value": "Training"}]


def stubbed_client(pages=FIXTURE["pages"]):
    client = boto3.client("pricing", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    stubber = Stubber(client)
    token = None
    for page in pages:
        expected = {"ServiceCode": "AmazonSageMaker", "Filters": FILTERS, "FormatVersion": "aws_v1", "MaxResults": 100}
        if token:
            expected["NextToken"] = token
        stubber.add_response("get_products", page, expected)
        token = page.get("NextToken")
    stubber.activate()
    return client, stubber


def test_every_shipped_price_has_a_source_and_names_a_catalog_type():
    catalog = prices()
    table = catalog.regions[catalog.default_region]
    assert len(table) >= 30
    for name, price in table.items():
        assert name in instances().types, name
        assert price.usd_per_hour > 0 and price.source
        if price.retrieved is not None:
            date.fromisoformat(price.retrieved)
    # the mid-2025 cut is reflected: an 8-GPU p5 costs more than a p4d but less than before the cut (113.07)
    assert table["ml.p4d.24xlarge"].usd_per_hour < table["ml.p5.48xlarge"].usd_per_hour < 113


def test_parse_keeps_only_on_demand_training_prices_of_the_region():
    entries = [e for page in FIXTURE["pages"] for e in page["PriceList"]]
    assert parse_price_list(entries, "us-east-1") == {"ml.p4d.24xlarge": 25.2513, "ml.g5.xlarge": 1.408, "ml.p5.48xlarge": 55.04}
    assert parse_price_list(entries, "us-west-2") == {"ml.p5.48xlarge": 57.0}


def test_refresh_follows_pages_and_records_source_and_date(tmp_path):
    path = tmp_path / "prices.json"
    shutil.copy(PRICES_PATH, path)
    before = load_prices(path).price("ml.g6e.xlarge")
    client, stubber = stubbed_client()
    new, missing = refresh(client, "us-east-1", instances().types, path, today=date(2026, 11, 22))
    stubber.assert_no_pending_responses()
    assert set(new) == {"ml.p4d.24xlarge", "ml.g5.xlarge", "ml.p5.48xlarge"}
    after = load_prices(path)
    p5 = after.price("ml.p5.48xlarge")
    assert (p5.usd_per_hour, p5.retrieved) == (55.04, "2026-11-22") and "Price List" in p5.source
    assert after.price("ml.g6e.xlarge") == before  # not in the API's answer: kept, with its old source
    assert "ml.p5en.48xlarge" in missing and "ml.g5.xlarge" not in missing


def test_cli_refresh_writes_the_catalog_it_is_given(tmp_path, monkeypatch):
    path = tmp_path / "prices.json"
    shutil.copy(PRICES_PATH, path)
    client, stubber = stubbed_client()
    monkeypatch.setattr(cli_catalog, "_pricing_client", lambda endpoint_url, profile=None: client)
    result = CliRunner().invoke(cli.app, ["prices", "refresh", "--region", "us-east-1", "--catalog", str(path)])
    assert result.exit_code == 0, result.output
    assert "3 prices" in result.output and "ml.p5en.48xlarge" in result.output
    assert load_prices(path).price("ml.p4d.24xlarge").source.startswith("AWS Price List Query API")
    assert PRICES_PATH.read_text() != path.read_text()


def test_cli_refresh_takes_the_region_and_credentials_of_a_profile(tmp_path, monkeypatch):
    config = tmp_path / "config"
    config.write_text("[profile prices]\nregion = us-west-2\n")
    credentials = tmp_path / "credentials"
    credentials.write_text("[prices]\naws_access_key_id = AKIAPROFILE\naws_secret_access_key = secret\n")
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    path = tmp_path / "prices.json"
    shutil.copy(PRICES_PATH, path)
    sent = []
    real = cli_catalog._pricing_client

    def client_of(endpoint_url, profile=None):
        client = real(endpoint_url, profile)
        client.meta.events.register("provide-client-params.pricing.GetProducts", lambda params, **kw: sent.append(params))
        assert client.meta.region_name == "us-east-1"  # the Price List API's own endpoint, for every region's prices
        assert client._request_signer._credentials.access_key == "AKIAPROFILE"  # the profile's credentials
        stubber = Stubber(client)  # answers without the network
        stubber.add_response("get_products", {"PriceList": [json.dumps(e) for e in []], "FormatVersion": "aws_v1"})
        stubber.activate()
        return client

    monkeypatch.setattr(cli_catalog, "_pricing_client", client_of)
    result = CliRunner().invoke(cli.app, ["prices", "refresh", "--profile", "prices", "--catalog", str(path)])
    assert result.exit_code == 0, result.output
    assert "prices for us-west-2" in result.output  # the profile's region, not us-east-1
    filters = {f["Field"]: f["Value"] for f in sent[0]["Filters"]}
    assert filters["regionCode"] == "us-west-2"


def test_cli_refresh_reports_an_api_error_without_touching_the_catalog(tmp_path, monkeypatch):
    path = tmp_path / "prices.json"
    shutil.copy(PRICES_PATH, path)
    client = boto3.client("pricing", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    stubber = Stubber(client)
    stubber.add_client_error("get_products", "AccessDeniedException", "not allowed: pricing:GetProducts")
    stubber.activate()
    monkeypatch.setattr(cli_catalog, "_pricing_client", lambda endpoint_url, profile=None: client)
    result = CliRunner().invoke(cli.app, ["prices", "refresh", "--catalog", str(path)])
    assert result.exit_code == 1
    assert "pricing:GetProducts" in result.output
    assert path.read_text() == PRICES_PATH.read_text()


@pytest.mark.parametrize("region", ["us-east-1"])
def test_cli_show_lists_prices_with_their_dates(region):
    result = CliRunner().invoke(cli.app, ["prices", "show", "--region", region])
    assert result.exit_code == 0, result.output
    assert "ml.p4d.24xlarge" in result.output and "2026-09-27" in result.output


def test_cli_instances_lists_libraries_and_prices():
    result = CliRunner().invoke(cli.app, ["instances"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    # the table when it fits the console, else one "header: value" block per type (a console's width differs
    # between a terminal, a pipe and a pytest-xdist worker): the p4d's row or block either way
    lines = result.output.splitlines()
    start = next(i for i, line in enumerate(lines) if "ml.p4d.24xlarge" in line)
    block = lines[start] if "smddp" in lines[start] else "\n".join(lines[start:lines.index("", start)])
    assert "smddp" in block and "smp_v2" in block and "25.25" in block and "NVLink 3" in block, block
    assert "ml.p2.xlarge" in result.output  # excluded, named


def test_refresh_records_what_the_region_offers_and_validation_uses_it(tmp_path, monkeypatch, spec_data):
    from smjobs import catalog
    from smjobs.checks.validate import validate_spec
    from smjobs.errors import SpecError
    from smjobs.planner import plan as planner

    path = tmp_path / "prices.json"
    shutil.copy(PRICES_PATH, path)
    client, _ = stubbed_client()
    refresh(client, "us-east-1", instances().types, path, today=date(2026, 11, 22))
    updated = load_prices(path)
    offered = updated.offered["us-east-1"]
    assert offered.instance_types == {"ml.p4d.24xlarge", "ml.g5.xlarge", "ml.p5.48xlarge"} and offered.retrieved == "2026-11-22"
    assert "Price List" in offered.source
    monkeypatch.setattr(catalog, "prices", lambda: updated)
    monkeypatch.setattr(planner, "prices", lambda: updated)

    with pytest.raises(SpecError) as raised:
        validate_spec({**spec_data, "region": "us-east-1"})  # ml.g5.12xlarge: no training SKU in that answer
    assert raised.value.paths() == ["compute.instance_type"]
    assert "not offered for training in us-east-1" in str(raised.value) and "read 2026-11-22" in str(raised.value)
    assert validate_spec({**spec_data, "region": "us-east-1", "compute": {"instance_type": "ml.p4d.24xlarge"}})
    assert validate_spec({**spec_data, "region": "eu-west-1"}), "a region never read is not checked"
    from smjobs.planner.memory import TransformerShape

    found = planner.plan(planner.Workload(TransformerShape(2, 64, 4, 32, 256), 8, 10), constraints=planner.Constraints())
    assert any(r.kind == "region" and r.instance_type == "ml.g5.12xlarge" for r in found.rejections)


def test_unchecked_availability_is_said_not_passed_over(tmp_path, monkeypatch, spec_data):
    """Without a region's Price List list, validate and dry runs say availability was not checked, naming the fix."""
    import yaml

    from smjobs.checks.cluster import availability_unknown
    from smjobs.checks.validate import validate_spec

    spec = validate_spec({**spec_data, "region": "eu-central-1", "compute": {"instance_type": "ml.p3dn.24xlarge"}})
    said = availability_unknown(spec, None)
    assert said is not None and "eu-central-1" in said and "ml.p3dn.24xlarge" in said
    assert "prices refresh --region eu-central-1" in said
    # a shipped us-east-1 price is evidence the type is offered there; --region overrides the spec's
    assert availability_unknown(spec, "us-east-1") is None
    spec_file = tmp_path / "job.yaml"
    spec_file.write_text(yaml.safe_dump({**spec_data, "region": "eu-central-1", "compute": {"instance_type": "ml.p3dn.24xlarge"}}))
    result = CliRunner().invoke(cli.app, ["validate", str(spec_file)], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "availability was not checked" in result.output
    checked = CliRunner().invoke(cli.app, ["validate", str(spec_file), "--region", "us-east-1"], env={"COLUMNS": "250"})
    assert checked.exit_code == 0 and "availability" not in checked.output


def test_cli_refresh_with_a_profile_that_does_not_exist_is_a_usage_error(tmp_path, monkeypatch):
    config = tmp_path / "config"
    config.write_text("[default]\nregion = us-west-2\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "prices.json"
    shutil.copy(PRICES_PATH, path)
    result = CliRunner().invoke(cli.app, ["prices", "refresh", "--profile", "nosuch", "--catalog", str(path)])
    assert result.exit_code == 2 and "could not be found" in result.output and "list-profiles" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)  # said, not a traceback
    assert path.read_text() == PRICES_PATH.read_text()
