"""Integration fixtures: a moto_server on a free 127.0.0.1 port, stopped by the test that started it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from smjobs.local import free_port

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
