"""The job/report protocol between the service and its supervisors, without the service.

A job goes to a real worker process (`python -m gitscripts.executor.worker`, the fresh-interpreter
engine's supervisor) exactly as the service sends it: the header on stdin, the confidential part in
the run's folder. What comes back is a `Report`; the service alone parses the script's answer in
it (`_with_answer`). These tests point at the protocol when an end-to-end execution test fails.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gitscripts.executor import protocol
from gitscripts.executor.protocol import Job, Report
from gitscripts.executor.sandbox import SandboxConfig
from gitscripts.executor.service import _with_answer
from gitscripts.executor.worker import JOB_FILE


def test_a_frame_reads_back_as_it_was_written() -> None:
    job: Job = {"root": "/r", "path": "a.py", "timeout": 1.5, "run": "x", "slot": 0, "limits": {}}
    assert protocol.read_job(io.BytesIO(protocol.encode(job))) == job


@pytest.mark.parametrize(
    ("frame", "problem"),
    [
        (protocol.encode({"a": 1})[:-1], "mid-frame"),  # cut short
        ((1 << 40).to_bytes(8, "big"), "too large"),  # a length no frame may have
        (len(b"[1]").to_bytes(8, "big") + b"[1]", "JSON object"),  # not an object
    ],
)
def test_a_broken_frame_is_a_protocol_error(frame: bytes, problem: str) -> None:
    with pytest.raises(protocol.ProtocolError, match=problem):
        protocol.read_frame(io.BytesIO(frame))


def _supervise(tmp_path: Path, source: str, data: object, timeout: float = 5.0) -> Report:
    """One run through a real worker process, the sandbox off (its own tests are elsewhere)."""
    checkout, jobs = tmp_path / "checkout", tmp_path / "jobs"
    checkout.mkdir()
    (checkout / "script.py").write_text(source)
    folder = jobs / "run-1"
    folder.mkdir(parents=True)
    (folder / JOB_FILE).write_text(json.dumps({"data": data, "env": {"MARK": "set"}}))
    job: Job = {
        "root": str(checkout),
        "path": "script.py",
        "timeout": timeout,
        "run": "run-1",
        "slot": 0,
        "limits": {"output_bytes": 1024, "result_bytes": 1024},
    }
    config = SandboxConfig(enabled=False, network="host", jobs=str(jobs))
    worker = subprocess.run(
        [sys.executable, "-I", "-m", "gitscripts.executor.worker", config.to_json()],
        input=protocol.encode(job),
        capture_output=True,
        timeout=60,
        env={"PATH": os.environ["PATH"]},
        check=True,
    )
    report = protocol.read_report(io.BytesIO(worker.stdout))
    assert not folder.exists()  # the run's folder goes with the run
    return report


def test_the_report_carries_the_answer_unparsed_and_the_output(tmp_path: Path) -> None:
    report = _supervise(
        tmp_path,
        "import os\ndef main(data):\n    print('hi')\n"
        "    return {'twice': data['n'] * 2, 'mark': os.environ['MARK']}\n",
        {"n": 21},
    )
    assert report["stdout"] == "hi\n" and report["timed_out"] is False
    answer = json.loads(base64.b64decode(report["answer"]))
    assert answer["ok"] is True and answer["result"] == {"twice": 42, "mark": "set"}
    assert "ok" not in report  # the supervisor says nothing of an answer it did not read
    ended = _with_answer(report)
    assert ended.ok and ended.result == {"twice": 42, "mark": "set"} and ended.error is None


def test_a_script_that_dies_is_reported_by_how_it_died(tmp_path: Path) -> None:
    report = _supervise(tmp_path, "import os\ndef main(data):\n    os.kill(os.getpid(), 9)\n", {})
    assert report["ok"] is False and "SIGKILL" in report["error"] and "answer" not in report


def test_a_script_past_its_timeout_is_killed_and_says_so(tmp_path: Path) -> None:
    source = "import time\ndef main(data):\n    print('started', flush=True)\n    time.sleep(60)\n"
    report = _supervise(tmp_path, source, {}, timeout=0.5)
    assert report["timed_out"] is True and report["ok"] is False
    assert report["stdout"] == "started\n"  # what it printed before is kept
    assert "timed out after 0.5 seconds" in report["error"]


def test_output_and_answer_are_capped_by_their_limits(tmp_path: Path) -> None:
    report = _supervise(
        tmp_path, "def main(data):\n    print('x' * 5000)\n    return {'big': 'y' * 5000}\n", {}
    )
    assert report["stdout"].endswith("[... output truncated ...]\n")
    assert len(report["stdout"]) < 1200
    assert report["ok"] is False and "result size limit" in report["error"]


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (b"\x00\xff{not json", "cannot be sent as JSON"),
        (b"[1, 2]", "not an outcome"),
        (b"[" * 300 + b"]" * 300, "cannot be sent as JSON"),
    ],
)
def test_an_answer_the_service_cannot_use_fails_its_run_only(answer: bytes, problem: str) -> None:
    report: Report = {
        "duration": 0.1,
        "stdout": "",
        "stderr": "",
        "timed_out": False,
        "answer": base64.b64encode(answer).decode(),
    }
    ended = _with_answer(report)
    assert ended.ok is False and ended.error is not None and problem in ended.error
