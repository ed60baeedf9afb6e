"""The policy linters are wired to fail: each of cfn-lint, checkov and parliament reports a planted mistake, and the
shipped template and policies carry no finding beyond the allowlist (``make lint`` runs the same check)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from smjobs.infra import lint, template

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
TOOLS = Path(os.environ.get("SMJOBS_LINT_TOOLS") or ROOT / ".venv" / "lint" / "bin")


@pytest.fixture(scope="module")
def tools() -> Path:
    if not (TOOLS / "checkov").exists():
        pytest.fail(f"no linters in {TOOLS}: `make .venv/lint/.installed` installs them")  # a failure, never a skip
    return TOOLS


def test_the_shipped_set_up_has_only_allowlisted_findings(tools, tmp_path):
    findings = lint.run_all(tools, tmp_path)
    unexpected, stale = lint.judge(findings, lint.load_allowlist())
    assert unexpected == [] and stale == []
    assert {f.tool for f in findings} == {"cfn-lint", "parliament"}  # and checkov passes every check


def test_each_linter_reports_a_planted_mistake(tools, tmp_path):
    bad = template.build()
    bucket = bad["Resources"]["ProjectBucket"]["Properties"]
    bucket["PublicAccessBlockConfiguration"] = {k: False for k in bucket["PublicAccessBlockConfiguration"]}
    del bucket["BucketEncryption"]
    bad["Resources"]["ExecutionRole"]["Properties"]["MaxSessionDuration"] = "forever"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    assert {"CKV_AWS_53", "CKV_AWS_54"} <= {f.check for f in lint.checkov(path, tools)}  # public access unblocked
    assert any(f.check.startswith("E") for f in lint.cfn_lint(path, tools))
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "admin.json").write_text(json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObjct", "Resource": "*"}]}))
    assert "UNKNOWN_ACTION" in {f.check for f in lint.parliament(policies, tools)}
