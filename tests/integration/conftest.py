"""Integration fixtures: a moto_server on a free 127.0.0.1 port, stopped by the test that started it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from smjobs.local.runner import free_port

BIN = Path(sys.executable).parent


@pytest.fixture
def moto_server(tmp_path):
    port = free_port()
    exe = shutil.which("moto_server", path=str(BIN)) or shutil.which("moto_server")
    proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=(tmp_path / "moto.log").open("w"))
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("moto_server did not start: " + (tmp_path / "moto.log").read_text()) from None
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _run_processes(work: Path) -> list[int]:
    """Processes whose environment names ``work`` as their SageMaker base dir (the run's toolkit, torchrun, ranks):
    torchrun starts the ranks in sessions of their own, so a process group says nothing about them."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if f"SAGEMAKER_BASE_DIR={work}".encode() in environ.read_bytes().split(b"\0"):
                found.append(int(environ.parent.name))
        except OSError:
            continue
    return found


@pytest.fixture
def run_processes():
    """A function: the PIDs of processes whose environment names a work dir as their SageMaker base dir."""
    return _run_processes
