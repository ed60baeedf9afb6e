"""The first failure of a local run, read from torchrun's summary."""

from __future__ import annotations

from smjobs.failures import describe, root_cause

SUMMARY = """[default1]:loading shard 3
[default1]:step=7 loss=0.5
Root Cause (first observed failure):
[0]:
  time      : 2026-11-22_09:00:54
  host      : localhost
  rank      : 1 (local_rank: 1)
  exitcode  : -9 (pid: 17980)  (SIGKILL)
  error_file: <N/A>
  traceback : Signal 9 (SIGKILL) received by PID 17980
""".splitlines()


def test_the_root_cause_names_rank_signal_pid_and_last_lines():
    cause = root_cause(SUMMARY)
    assert (cause.rank, cause.exit_code, cause.pid, cause.signal_name) == (1, -9, 17980, "SIGKILL")
    text = describe(cause, SUMMARY)
    assert text.startswith("first failure: rank 1 (pid 17980) was killed by SIGKILL")
    assert "out-of-memory killer" in text and "  step=7 loss=0.5" in text


def test_an_exit_code_and_no_summary():
    lines = [line.replace("-9 (pid: 17980)  (SIGKILL)", "3 (pid: 5)") for line in SUMMARY]
    cause = root_cause(lines)
    assert cause.signal_name is None and describe(cause, lines).startswith("first failure: rank 1 (pid 5) exited with code 3")
    assert root_cause(["[default0]:step=1"]) is None
