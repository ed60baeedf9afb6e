"""The documentation works as written: every shell command in README.md and docs/*.md runs verbatim, the MkDocs
site builds with ``--strict`` (a broken link, anchor or page left out of the navigation fails), and the README's
links lead somewhere.

Each page's fenced ``sh`` blocks run in order in one bash (as a reader pastes them into one terminal), from an
empty folder that has only the project's ``.venv`` and the spec files the page shows (a ``yaml`` block whose first
line is ``# <file>.yaml`` is written to that file first). The README's first block activates the environment;
the docs pages are read after Getting started, so theirs run with it activated. AWS is a moto server a page
starts itself on ``$PORT`` (a free port here). The environment is a new user's: no AWS credentials, region or
SageMaker config (so the SDK's telemetry must stay off by itself).

The README's first block is the two set-up commands. ``make demo`` runs here; ``make test`` is the command that
runs this test, so it is checked to be exactly the Makefile target and not started again.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from smjobs.local.runner import free_port

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)

# what each page's commands must print: a command that printed nothing useful but exited 0 would pass otherwise
EXPECTED = {
    "README.md": ["local run succeeded", "job_name: ddp-mlp-", "torch_distributed:"],
    "getting-started.md": ["smjobs 0.", "stack smjobs: created", "first-job: Completed", "nothing to stop",
                           "billable time", "\nCompleted\n"],
    "output.md": ["validate ml.g5.12xlarge 8", '"kind": "error"', '"path": "compute.instance_count"',
                  "exit code 2"],
    "parallelism.md": ["1F1B: 4 ranks", "bubble:", "lower case: the rank's second stage"],
    "planner.md": ["configurations that fit", "instance_type auto ->", "ml.p5.48xlarge"],
    "inference.md": ["create_training_job:", "create_transform_job:"],
    "tuning.md": ["tuner:"],
    "tracking.md": ["'FINISHED')]"],
    "stub.md": ["smp v1: gpt, pp 2 x dp 4 x tp 2", "backend smddp", "[rank 0] step=3 loss=",
                "smp_v2 (torch.sagemaker, smdistributed-stub) on 4 process(es)"],
    "troubleshooting.md": ["no AWS region", "No AWS credentials found", "no execution role found",
                           "did you mean 'processes_per_host'", "did you mean 'steps'", "which has 4 GPUs",
                           "is a CPU instance", "SMDDP does not run on ml.g5.12xlarge", "is required with use_spot",
                           "does not fit in GPU memory", "no configuration fits"],
}


def blocks(path: Path, kind: str) -> list[str]:
    return [body for lang, body in FENCE.findall(path.read_text()) if lang == kind]


def pages_with_commands() -> list[str]:
    return ["README.md"] + sorted(p.name for p in DOCS.glob("*.md") if blocks(p, "sh"))


def test_every_page_with_commands_says_what_they_must_print():
    assert sorted(EXPECTED) == sorted(pages_with_commands())


def test_the_readme_starts_with_the_two_commands_and_make_demo_runs():
    text = README.read_text()
    first = blocks(README, "sh")[0]
    assert text.startswith("```sh\n" + first)
    assert [line.split("#")[0].strip() for line in first.strip().splitlines()] == ["make demo", "make test"]
    assert len(text.splitlines()) <= 60  # about one screen; the rest is in docs/
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^test: ", makefile, re.M) and re.search(r"^demo: ", makefile, re.M)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    demo = subprocess.run(["make", "demo"], cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "dry run equals the request sent: True" in demo.stdout
    assert "set-up: CloudFormation stack smjobs created" in demo.stdout


def test_the_readmes_links_lead_to_files_of_the_repository():
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README.read_text())
    assert len(targets) >= 15
    assert [t for t in targets if not t.startswith("http") and not (ROOT / t).exists()] == []


@pytest.mark.parametrize("page", pages_with_commands())
def test_every_shell_block_runs_verbatim(page, tmp_path):
    path = README if page == "README.md" else DOCS / page
    commands = blocks(path, "sh")[1:] if page == "README.md" else ["source .venv/bin/activate", *blocks(path, "sh")]
    work = tmp_path / "reader"
    work.mkdir()
    (work / ".venv").symlink_to(ROOT / ".venv")
    for body in blocks(path, "yaml"):
        name = body.splitlines()[0].removeprefix("#").strip()
        if body.startswith("# ") and name.endswith(".yaml") and "/" not in name:
            (work / name).write_text(body)
    script = "set -ex\n" + "\n".join(commands)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "SAGEMAKER_USER_CONFIG", "VIRTUAL_ENV")) and k != "PYTHONPATH"}
    env.update(PORT=str(free_port()), SMJOBS_STATE_DIR=str(tmp_path / "state"), COLUMNS="160",
               AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"), AWS_CONFIG_FILE=str(tmp_path / "none"),
               AWS_EC2_METADATA_DISABLED="true", SAGEMAKER_SUPPRESS_V2_WARNING="1")
    proc = subprocess.Popen(["bash", "-c", script], cwd=work, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=900)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the moto server, if a command failed before `kill %1`
        except ProcessLookupError:
            pass
    tail = output[-6000:]
    assert proc.returncode == 0, tail
    assert "Traceback" not in output, tail
    for expected in EXPECTED[page]:
        assert expected in output, f"{expected!r} missing from the run of {page}'s commands:\n{tail}"


def test_the_site_builds_strictly(tmp_path):
    site = tmp_path / "site"
    built = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                           cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    pages = {p.relative_to(site).as_posix() for p in site.rglob("index.html")}
    assert {"index.html", "reference/spec/index.html", "reference/cli/index.html", "troubleshooting/index.html",
            "contributing/index.html", "changelog/index.html"} <= pages
    assert len(pages) >= 23
    assert (site / "schemas" / "status.schema.json").is_file()
