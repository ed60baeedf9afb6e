"""The first failure of a local run, read from torchrun's summary."""

from __future__ import annotations

from smjobs.local import failures
from smjobs.local.failures import describe, root_cause

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


def test_an_oom_kill_is_told_apart_from_a_kill_by_hand(tmp_path, monkeypatch):
    cause = root_cause(SUMMARY)
    assert "rank 1 (pid 17980) was killed by the kernel's out-of-memory killer" in describe(cause, SUMMARY, oom_killed=True)
    assert "not by the out-of-memory killer" in describe(cause, SUMMARY, oom_killed=False)
    counter = tmp_path / "memory.events"
    counter.write_text("low 0\noom 2\noom_kill 2\n")
    monkeypatch.setattr(failures, "OOM_COUNTERS", ((counter, "oom_kill"),))
    before = failures.oom_kills()
    assert before == {str(counter): 2} and failures.oom_killed_since(before) is False
    counter.write_text("low 0\noom 3\noom_kill 3\n")
    assert failures.oom_killed_since(before) is True
    monkeypatch.setattr(failures, "OOM_COUNTERS", ((tmp_path / "absent", "oom_kill"),))
    assert failures.oom_killed_since({}) is None


def test_a_killed_launcher_is_named_from_the_toolkits_report():
    from smjobs.local.failures import launcher_ended

    toolkit = 'ExecuteUserScriptError:\nExitCode -9\nErrorMessage ""\nCommand "torchrun --nnodes 1 regress.py"'
    assert launcher_ended(toolkit) == "the launcher (torchrun or mpirun) was killed by SIGKILL; no rank reported a failure"
    assert launcher_ended(toolkit.replace("-9", "3")) == "the launcher (torchrun or mpirun) exited with code 3"
    assert launcher_ended("Traceback (most recent call last): ...") is None
