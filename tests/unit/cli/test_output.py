"""Output that survives terminals and pipes: every table at 80 and 200 columns keeps its words whole (a table that
does not fit becomes key/value records), and what smjobs prints for scripts parses when stdout is a pipe."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

COMMANDS = {
    "plan": (["plan", "auto_gpt_7b"], ["ml.p5.48xlarge", "unsharded between micro-batches"]),
    "instances": (["instances"], ["ml.p4de.24xlarge", "torch_distributed"]),
    "validate": (["validate", "ddp_mlp"], ["763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.8.0-gpu-py312"]),
    "prices": (["prices", "show", "--region", "us-east-1"], ["ml.g5.12xlarge"]),
}


def piped(args, columns: int):
    """The CLI with stdout a pipe, as `smjobs ... | less` or `> file` gives it."""
    env = {**os.environ, "COLUMNS": str(columns)}
    env.pop("FORCE_COLOR", None)
    done = subprocess.run([sys.executable, "-m", "smjobs.cli", *args], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("name", COMMANDS)
def test_tables_keep_every_word_whole_at_80_and_200_columns(name):
    args, tokens = COMMANDS[name]
    for columns in (80, 200):
        text = piped(args, columns)
        for token in tokens:
            assert token in text, (columns, token, text[:3000])
        for line in text.splitlines():
            if line[:1] in "│┃┏┡└┌├":  # a rich table's row: drawn within the width
                assert len(line) <= columns, (columns, line)
    assert any(line[:1] in "│┃" for line in piped(args, 200).splitlines())  # 200 columns: still a table


def test_the_plan_table_folds_to_records_at_80_columns_and_stays_a_table_at_200():
    narrow = piped(["plan", "auto_gpt_7b"], 80)
    assert "instances: 1 x ml.p5.48xlarge" in narrow and not any(line.startswith("│") for line in narrow.splitlines()[:40])


def test_a_dry_run_through_a_pipe_is_yaml_with_every_value_whole():
    text = piped(["submit", "ddp_mlp", "--dry-run"], 80)
    request = yaml.safe_load(text)
    image = request["create_training_job"]["AlgorithmSpecification"]["TrainingImage"]
    assert image == "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.8.0-gpu-py312"
    assert max(map(len, text.splitlines())) > 80  # long lines are kept whole, not wrapped
