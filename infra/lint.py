"""Policy linters over the account set-up: cfn-lint and checkov on the template, parliament on every policy.

``python -m smjobs.infra.lint [--tools DIR]`` (``make lint`` runs it) renders the template and the policies the
boto3 path creates (with and without the VPC and KMS statements), runs the three tools, and fails on any finding
that ``lint-allowlist.yaml`` does not list with a reason. An allowlist entry that no longer matches anything is
a failure too, so the list cannot outlive its findings.

The tools live in their own environment (``.venv/lint``): checkov pins an older boto3 than smjobs needs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from smjobs.infra import policies, submitter

ALLOWLIST_PATH = Path(__file__).with_name("lint-allowlist.yaml")
_EXAMPLE_ACCOUNT = "123456789012"
_EXAMPLE_KEY = f"arn:aws:kms:us-east-1:{_EXAMPLE_ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
_EXAMPLE_MLFLOW = f"arn:aws:sagemaker:us-east-1:{_EXAMPLE_ACCOUNT}:mlflow-tracking-server/team"


@dataclass(frozen=True)
class Finding:
    tool: str
    check: str
    target: str
    """The file (policies) or resource (template) the finding is about."""
    detail: str = ""

    def key(self) -> tuple[str, str, str]:
        return self.tool, self.check, self.target


def policy_files(folder: Path) -> list[Path]:
    """The policies as the boto3 path makes them, for us-east-1 of an example account, one JSON file each."""
    from smjobs import catalog

    bucket = policies.default_bucket_name(_EXAMPLE_ACCOUNT, "us-east-1")
    scope = policies.Scope(bucket=bucket, region="us-east-1", account_id=_EXAMPLE_ACCOUNT,
                           image_accounts=catalog.frameworks().image_accounts("us-east-1"))
    documents = {
        "execution-role.json": policies.execution_role_policy(scope),
        "execution-role-vpc-kms.json": policies.execution_role_policy(scope, vpc=True, kms_key_arns=(_EXAMPLE_KEY,)),
        "execution-role-mlflow.json": policies.execution_role_policy(scope, mlflow_arns=(_EXAMPLE_MLFLOW,)),
        "bucket-policy.json": policies.bucket_policy(bucket),
        "trust-policy.json": policies.trust_policy(_EXAMPLE_ACCOUNT),
        "submitter.json": submitter.submitter_policy(scope),
    }
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, document in documents.items():
        path = folder / name
        path.write_text(json.dumps(document, indent=2))
        paths.append(path)
    return paths


def _tool(tools: Path | None, name: str) -> str:
    found = shutil.which(name, path=str(tools)) if tools else shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} not found{f' in {tools}' if tools else ' on PATH'}: `make .venv/lint/.installed` "
                         "installs cfn-lint, checkov and parliament")
    return found


def _run(argv: list[str]) -> str:
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE"}  # checkov: no call home for guideline links
    return subprocess.run(argv, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL).stdout


def cfn_lint(template: Path, tools: Path | None) -> list[Finding]:
    out = _run([_tool(tools, "cfn-lint"), "--format", "json", str(template)])
    return [Finding("cfn-lint", f["Rule"]["Id"], "/".join(map(str, f["Location"]["Path"][:4])), f["Message"])
            for f in json.loads(out or "[]")]


def checkov(template: Path, tools: Path | None) -> list[Finding]:
    out = _run([_tool(tools, "checkov"), "-f", str(template), "--framework", "cloudformation", "--skip-download",
                "--quiet", "--compact", "-o", "json"])
    report = json.loads(out) if out.strip() else {}
    failed = report.get("results", {}).get("failed_checks", []) if isinstance(report, dict) else []
    if isinstance(report, dict) and report.get("summary", {}).get("parsing_errors"):
        return [Finding("checkov", "parsing-error", template.name)]
    return [Finding("checkov", c["check_id"], c["resource"], c["check_name"]) for c in failed]


def parliament(folder: Path, tools: Path | None) -> list[Finding]:
    out = _run([_tool(tools, "parliament"), "--directory", str(folder), "--json", "--include-community-auditors"])
    findings = []
    for line in out.splitlines():
        if line.strip():
            f = json.loads(line)
            findings.append(Finding("parliament", f["issue"], Path(f["location"]["filepath"]).name, str(f.get("detail"))))
    return findings


def run_all(tools: Path | None, scratch: Path) -> list[Finding]:
    from smjobs.infra.template import render

    template = scratch / "smjobs.cfn.yaml"
    template.write_text(render())
    policy_folder = scratch / "policies"
    policy_files(policy_folder)
    return [*cfn_lint(template, tools), *checkov(template, tools), *parliament(policy_folder, tools)]


def load_allowlist(path: Path = ALLOWLIST_PATH) -> dict[tuple[str, str, str], str]:
    """(tool, check, target) -> reason; an entry without a reason is refused."""
    entries = yaml.safe_load(path.read_text()) or []
    allowed = {}
    for entry in entries:
        reason = str(entry.get("reason") or "").strip()
        if not reason:
            raise SystemExit(f"{path.name}: {entry} has no reason; every accepted finding needs one")
        allowed[(entry["tool"], entry["check"], entry["target"])] = reason
    return allowed


def judge(findings: list[Finding], allowed: dict[tuple[str, str, str], str]) -> tuple[list[Finding], list[tuple]]:
    """(findings not on the allowlist, allowlist entries that matched nothing)."""
    unexpected = [f for f in findings if f.key() not in allowed]
    seen = {f.key() for f in findings}
    stale = [key for key in allowed if key not in seen]
    return unexpected, stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tools", type=Path, help="folder with cfn-lint, checkov and parliament (default: PATH)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="smjobs-lint-") as tmp:
        findings = run_all(args.tools, Path(tmp))
    unexpected, stale = judge(findings, load_allowlist())
    for f in findings:
        mark = "FINDING" if f in unexpected else "allowed"
        print(f"{mark:8} {f.tool} {f.check} {f.target}: {f.detail}")
    for tool, check, target in stale:
        print(f"STALE    {tool} {check} {target}: on the allowlist but no longer found; remove it")
    print(f"policy lint: {len(findings)} finding(s), {len(unexpected)} not allowed, {len(stale)} stale allowlist entries")
    return 1 if unexpected or stale else 0


if __name__ == "__main__":
    sys.exit(main())
