"""Library messages go through ``logging.getLogger("smjobs")`` and its children, which the CLI renders on stderr
at the level ``-v`` / ``-q`` set; library code outside the CLI has no ``print``."""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import yaml
from typer.testing import CliRunner

from smjobs.cli import app

ROOT = Path(__file__).resolve().parents[3]
runner = CliRunner()


def test_a_submission_logs_what_it_uploads_and_sends(moto_aws, spec_data, caplog):
    from smjobs.api import submit
    from smjobs.checks.validate import validate_spec

    with caplog.at_level(logging.INFO, logger="smjobs"):
        submit(validate_spec(spec_data), aws=moto_aws, job_name="logged-1")
    messages = {(r.name, r.getMessage()) for r in caplog.records}
    assert any(name == "smjobs.aws.submit" and text.startswith("CreateTrainingJob logged-1 sent") for name, text in messages)
    assert any(name == "smjobs.aws.upload" and text.startswith("code archive:") and "s3://" in text for name, text in messages)
    assert any(name == "smjobs.aws.submit" and "role arn:aws:iam::123456789012:role/" in text for name, text in messages)


def test_verbose_and_quiet_set_the_level_the_cli_renders(moto_aws, spec_data, tmp_path, monkeypatch):
    monkeypatch.setenv("SMJOBS_STATE_DIR", str(tmp_path / "state"))
    spec = tmp_path / "job.yaml"
    spec.write_text(yaml.safe_dump(spec_data))
    args = ["submit", str(spec), "--region", "us-east-1", "--yes"]
    loud = runner.invoke(app, ["-v", *args, "--job-name", "loud-1"])
    assert loud.exit_code == 0, loud.output
    assert "info: CreateTrainingJob loud-1 sent" in loud.stderr and "info: code archive:" in loud.stderr
    plain = runner.invoke(app, [*args, "--job-name", "plain-1"])
    assert plain.exit_code == 0 and "info:" not in plain.stderr and "submitted plain-1" in plain.stdout
    debug = runner.invoke(app, ["-vv", "plan", "auto_gpt_7b"])
    assert debug.exit_code == 0 and "debug: planned auto-gpt-7b in " in debug.stderr
    quiet = runner.invoke(app, ["-q", "-v", "plan", "auto_gpt_7b"])
    assert quiet.exit_code == 0 and "debug:" not in quiet.stderr and logging.getLogger("smjobs").level == logging.ERROR


def _prints(tree: ast.AST) -> list[int]:
    """Lines of calls to the builtin print, outside ``if __name__ == "__main__":`` blocks and functions named
    ``main`` (a module's own command, run with ``python -m``)."""
    found = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
            return
        if isinstance(node, ast.FunctionDef) and node.name == "main":
            return
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
            found.append(node.lineno)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def test_library_code_outside_the_cli_does_not_print():
    # the CLI, the console script's entry and the demo are the command line; planner/report and tables render
    # through the console they are given (rich), which is their purpose
    command_line = {"cli", "__main__.py", "demo.py"}
    offenders = {}
    for path in sorted((ROOT / "jobs").rglob("*.py")):
        if path.relative_to(ROOT / "jobs").parts[0] in command_line:
            continue
        lines = _prints(ast.parse(path.read_text()))
        if lines:
            offenders[str(path.relative_to(ROOT))] = lines
    assert offenders == {}
    assert _prints(ast.parse("def f():\n    print('x')\n")) == [2]  # the scan finds what it looks for
