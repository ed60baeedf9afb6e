"""The docs' generated references cover everything: every field of every spec model, with its type, default and
docstring, and every command and option of the CLI (docs/scripts/reference.py, which the site build runs)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import typer

from smjobs.cli import app
from smjobs.spec.job import JobSpec

SCRIPT = Path(__file__).resolve().parents[3] / "docs" / "scripts" / "reference.py"
_spec = importlib.util.spec_from_file_location("docs_reference", SCRIPT)
reference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reference)


def test_every_field_of_every_spec_model_has_a_documented_row():
    text = reference.spec_markdown()
    sections = reference._sections(JobSpec)
    assert len(sections) >= 25  # the job, compute, channels, the seven strategies, plan, tuning, tracking, ...
    headings = re.findall(r"^## (.+)$", text, re.M)
    assert len(headings) == len(sections)
    for path, model in sections:
        body = text.split(f"\n## `{path}`\n" if path else "\n## Top-level fields\n", 1)[1].split("\n## ", 1)[0]
        for name, field in model.model_fields.items():
            row = next((line for line in body.splitlines() if line.startswith(f"| `{name}` |")), None)
            assert row is not None, f"{path}.{name} has no row"
            if field.description:  # the docstring written under the field, whitespace folded
                assert " ".join(field.description.split())[:60].replace("|", "\\|") in row, (path, name)
    assert "| `max_run_s` | integer | `86400` | seconds |" in text
    assert "| `volume_size_gb` | integer | `100` | GB | <= 16,384 |" in text
    assert "| `name` | string | **required** |" in text
    assert "[Compute](#compute)" in text and "## `distribution (type: fsdp)`" in text


def test_undocumented_fields_are_none_but_the_strategies_type_tags():
    missing = [f"{path}.{name}" for path, model in reference._sections(JobSpec)
               for name, field in model.model_fields.items() if not field.description and name != "type"]
    assert missing == []


def test_every_command_and_option_is_in_the_cli_reference():
    text = reference.cli_markdown()
    root = typer.main.get_command(app)
    commands = list(reference._commands(root, "smjobs"))
    assert len(commands) >= 19
    for name, command, _ in commands:
        assert f"\n## `{name}`\n" in text
        body = text.split(f"\n## `{name}`\n", 1)[1].split("\n## ", 1)[0]
        for param in command.params:
            if param.name != "help":
                label = f"`{param.name.upper()}` (argument)" if param.param_type_name == "argument" else f"`{param.opts[0]}`"
                assert label in body, (name, param.name)
    assert "| `--output`, `-o` | str | `text` |" in text
    assert "## `smjobs infra deploy`" in text
