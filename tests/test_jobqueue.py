"""dask-jobqueue: the configurations users copy (examples/cluster/) run as they are, against a
service with EXECUTOR=dask.

- `jobqueue_local.py` with dask-jobqueue's local test cluster (its jobs are shell processes).
- `jobqueue_slurm.py` against a real single-node SLURM started here (munged, slurmctld and slurmd
  on this machine, their files in a temporary directory, nothing of /etc). Without SLURM the
  test is skipped, except in CI (`CI=true`), where it fails: it cannot pass without running.

Each checks what a user relies on: a run over HTTP runs in a job's worker (its record names the
job's worker), runs waiting grow the cluster up to the maximum of jobs, idle jobs are stopped
again, and stopping the configuration stops every job.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port, live_server
from tests.test_cluster import (
    WHO,
    WORKER_TOKEN,
    Cluster,
    _process_alive,
    _start_scheduler,
    _wait,
)

pytest.importorskip("dask_jobqueue")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "cluster"
SLURM_COMMANDS = ("munged", "slurmctld", "slurmd", "sinfo", "squeue", "sbatch", "scancel")

# What a run sees of its sandbox: a job's worker runs scripts as the service's engine does.
PROBE = b"""import os
def main(data):
    status = dict(line.split(":\\t", 1) for line in open("/proc/self/status").read().splitlines())
    return {"uid": os.getuid(), "no_new_privs": status["NoNewPrivs"].strip(),
            "seccomp": status["Seccomp"].strip(), "cap_eff": status["CapEff"].strip(),
            "sees_data": os.path.exists(data["data_dir"])}
"""


@contextmanager
def _service(root: Path) -> Iterator[Cluster]:
    """A service with EXECUTOR=dask at a scheduler that is not there yet (the configuration
    starts it), letting 8 runs wait on the scheduler so that adaptive scaling sees them."""
    port = free_port()
    data_dir = root / "data"
    with live_server(
        data_dir,
        root / "service.log",
        EXECUTOR="dask",
        DASK_SCHEDULER_ADDRESS=f"tcp://127.0.0.1:{port}",
        DASK_SCHEDULER_QUEUE="8",
        WORKER_TOKEN=WORKER_TOKEN,
        LOG_LEVEL="INFO",
    ) as server:
        service = Cluster(server.base, data_dir, port, root)
        service.sign_in()
        yield service


@contextmanager
def _configuration(
    name: str, service: Cluster, *args: str, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """`python examples/cluster/<name> --service ... --port ...`, run as a user runs it, stopped
    (SIGTERM, as Ctrl-C) when the block ends."""
    log = service.root / f"{name}.log"
    command = [sys.executable, str(EXAMPLES / name), "--service", service.base,
               "--port", str(service.scheduler_port), *args]  # fmt: skip
    with log.open("ab") as output:
        process = subprocess.Popen(
            command,
            env={**os.environ, "WORKER_TOKEN": WORKER_TOKEN, **(env or {})},
            cwd=service.root,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait(lambda: "Scheduler at" in log.read_text() or process.poll() is not None, 60,
               "the configuration did not start")  # fmt: skip
        assert process.poll() is None, log.read_text()
        yield process
    finally:
        process.terminate()
        process.wait(timeout=60)


def _workers(service: Cluster) -> int:
    cluster = service.health()["cluster"]
    return int(cluster["workers"]) if cluster["connected"] else 0


def _grows_under_load_and_shrinks(
    service: Cluster, maximum: int, jobs: Callable[[], int]
) -> set[str]:
    """Runs waiting grow the cluster to `maximum` workers (`jobs()` counted by the queue), then,
    idle, it goes back to one. The names of the workers that ran them."""
    # The scheduler estimates waiting work from the durations it has seen: one run first.
    warm = service.run("who.py", {"seconds": 2})
    assert warm.status_code == 200 and warm.json()["success"] is True, warm.text
    runs = [service.submit("who.py", {"seconds": 2}) for _ in range(3 * maximum)]
    _wait(lambda: _workers(service) == maximum, 60, f"not {maximum} workers")
    assert jobs() >= maximum
    records = [service.record(run["id"], wait=60) for run in runs]
    assert all(record["status"] == "succeeded" for record in records), records
    _wait(lambda: _workers(service) == 1 and jobs() == 1, 60, "idle jobs were not stopped")
    return {record["worker"] for record in records}


def test_a_worker_the_scheduler_retires_stops_and_does_not_come_back(tmp_path: Path) -> None:
    """What adaptive scaling down does to a job's worker (the scheduler retires and removes it):
    the worker ends, so that its batch job ends and frees its allocation."""
    from distributed import Client

    port = free_port()
    scheduler = _start_scheduler(port, tmp_path / "scheduler.log")
    command = [sys.executable, "-m", "gitscripts", "worker", f"tcp://127.0.0.1:{port}",
               "--service", "http://127.0.0.1:9", "--name", "retired"]  # fmt: skip
    with (tmp_path / "worker.log").open("ab") as log:
        worker = subprocess.Popen(command, env={**os.environ, "WORKER_TOKEN": WORKER_TOKEN},
                                  stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        with Client(f"tcp://127.0.0.1:{port}", timeout=30) as client:
            _wait(lambda: client.scheduler_info()["workers"] or worker.poll() is not None, 60,
                   "the worker did not come")  # fmt: skip
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()
            # As dask-jobqueue's scaling down asks it (`SpecCluster`: retire, no close).
            client.retire_workers(names=["retired"], close_workers=False)
            assert worker.wait(timeout=30) == 0, (tmp_path / "worker.log").read_text()
            assert not client.scheduler_info()["workers"]
    finally:
        for process in (worker, scheduler):
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=30)


# -- dask-jobqueue's local test cluster ----------------------------------------------------------
def test_the_local_jobqueue_configuration_runs_and_scales(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    root = tmp_path_factory.mktemp("jobqueue-local")
    with (
        _service(root) as service,
        _configuration("jobqueue_local.py", service, "--maximum-jobs", "3") as launcher,
    ):
        _wait(lambda: _workers(service) == 1, 60, "the first job's worker did not come")
        service.upload("who.py", WHO)
        reply = service.run("who.py", {})
        assert reply.status_code == 200 and reply.json()["success"] is True, reply.text
        first = service.record(reply.json()["run_id"])["worker"]
        assert first.startswith("LocalCluster-"), first  # the name jobqueue gives a job

        seen: set[int] = set()

        def jobs() -> int:  # the local test cluster's jobs: its children running a worker
            table = subprocess.run(["ps", "-o", "pid=,ppid=,args=", "-e"], capture_output=True,
                                   text=True, check=True).stdout  # fmt: skip
            pids = {
                int(line.split()[0])
                for line in table.splitlines()
                if "gitscripts worker" in line and line.split()[1] == str(launcher.pid)
            }
            seen.update(pids)
            return len(pids)

        ran_on = _grows_under_load_and_shrinks(service, 3, jobs)
        assert len(ran_on) > 1 and all(name.startswith("LocalCluster-") for name in ran_on)
    # Stopping the configuration stops its jobs.
    _wait(
        lambda: not any(_process_alive(pid) for pid in seen), 30, "jobs outlived the configuration"
    )


# -- a real SLURM --------------------------------------------------------------------------------
@dataclass
class Slurm:
    conf: Path
    root: Path

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def jobs(self, *options: str) -> list[str]:
        """`squeue`'s job ids (and states with `-o %i:%t`)."""
        done = subprocess.run(["squeue", "-h", "-o", "%i:%t", *options], env=self.env,
                              capture_output=True, text=True, check=True)  # fmt: skip
        return done.stdout.split()

    def logs(self) -> str:
        return "\n".join(
            f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}"
            for log in sorted(self.root.glob("*.log"))
        )


def _slurm_installed() -> bool:
    return all(shutil.which(command) for command in SLURM_COMMANDS)


def _node_line(name: str) -> str:
    """This machine as a node: `slurmd -C`'s own description (its CPUs, cores and memory)."""
    done = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True)
    described = done.stdout.splitlines()[0].split()
    hardware = [item for item in described if not item.startswith("NodeName=")]
    return " ".join([f"NodeName={name}", "NodeAddr=127.0.0.1", *hardware, "State=UNKNOWN"])


@pytest.fixture(scope="module")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slurm]:
    """A single-node SLURM on this machine, as root: munged, slurmctld and slurmd in the
    foreground, with their key, sockets, state, spool and logs in a temporary directory."""
    if not _slurm_installed():
        if os.environ.get("CI") == "true":
            pytest.fail(
                f"SLURM is needed in CI: {', '.join(SLURM_COMMANDS)} (slurmctld, slurmd, slurm-client, munge)"
            )
        pytest.skip("SLURM is not installed (apt-get install slurmctld slurmd slurm-client munge)")
    if os.getuid() != 0:
        pytest.skip("the SLURM test starts its daemons as root")
    root = tmp_path_factory.mktemp("slurm")
    munge = root / "munge"
    munge.mkdir(mode=0o711)
    key = root / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    (root / "state").mkdir()
    (root / "spool").mkdir()
    (root / "plugstack.conf").write_text("")  # no SPANK plugin (not /etc/slurm's)
    node = socket.gethostname().split(".")[0]
    conf = root / "slurm.conf"
    conf.write_text(
        "\n".join(
            [
                "ClusterName=gitscripts-test",
                f"SlurmctldHost={node}(127.0.0.1)",
                f"SlurmctldPort={free_port()}",
                f"SlurmdPort={free_port()}",
                "SlurmUser=root",
                "SlurmdUser=root",
                "AuthType=auth/munge",
                "CredType=cred/munge",
                f"AuthInfo=socket={munge / 'socket'}",
                f"StateSaveLocation={root / 'state'}",
                f"SlurmdSpoolDir={root / 'spool'}",
                f"SlurmctldPidFile={root / 'slurmctld.pid'}",
                f"SlurmdPidFile={root / 'slurmd.pid'}",
                f"SlurmctldLogFile={root / 'slurmctld.log'}",
                f"SlurmdLogFile={root / 'slurmd.log'}",
                f"PlugStackConfig={root / 'plugstack.conf'}",
                "MailProg=/bin/true",
                # What works in a container without systemd or cgroup delegation.
                "ProctrackType=proctrack/linuxproc",
                "TaskPlugin=task/none",
                "JobAcctGatherType=jobacct_gather/none",
                "AccountingStorageType=accounting_storage/none",
                "MpiDefault=none",
                # Jobs share the node by cores: one job a core.
                "SelectType=select/cons_tres",
                "SelectTypeParameters=CR_Core",
                "ReturnToService=2",
                _node_line(node),
                "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
                "",
            ]
        )
    )
    env = {**os.environ, "SLURM_CONF": str(conf)}
    daemons: list[subprocess.Popen[bytes]] = []

    def start(*command: str) -> None:
        log = (root / f"{command[0]}.out.log").open("ab")
        daemons.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT))

    handle = Slurm(conf, root)
    try:
        start("munged", "--foreground", "--force", f"--key-file={key}",
              f"--socket={munge / 'socket'}", f"--pid-file={munge / 'munged.pid'}",
              f"--seed-file={munge / 'seed'}", f"--log-file={root / 'munged.log'}")  # fmt: skip
        _wait(lambda: (munge / "socket").exists(), 20, "munged did not start")
        start("slurmctld", "-D", "-i", "-f", str(conf))
        start("slurmd", "-D", "-N", node, "-f", str(conf))

        def idle() -> bool:
            done = subprocess.run(["sinfo", "-h", "-N", "-o", "%t"], env=env,
                                  capture_output=True, text=True)  # fmt: skip
            assert all(daemon.poll() is None for daemon in daemons), handle.logs()
            return done.stdout.strip() == "idle"

        _wait(idle, 60, "the node is not idle")
        yield handle
    finally:
        # Jobs first (their worker processes live under slurmstepd, not under slurmd).
        if daemons and all(daemon.poll() is None for daemon in daemons):
            subprocess.run(["scancel", "--full", "-u", "root"], env=env, check=False)
            _wait(lambda: not handle.jobs(), 30, "jobs were not cancelled")
        for daemon in reversed(daemons):
            daemon.terminate()
        for daemon in reversed(daemons):
            daemon.wait(timeout=30)


def test_the_slurm_configuration_runs_in_jobs_and_scales(slurm: Slurm) -> None:
    with _service(slurm.root) as service, _configuration(
        "jobqueue_slurm.py", service, "--interface", "lo", "--maximum-jobs", "2",
        "--memory", "1GB", "--walltime", "00:10:00", "--log-directory", str(slurm.root / "jobs"),
        env={"SLURM_CONF": str(slurm.conf)},
    ):  # fmt: skip
        _wait(lambda: _workers(service) == 1, 60, "the first job's worker did not come")
        assert len(slurm.jobs("-t", "R")) == 1  # the minimum: one job, running
        service.upload("who.py", WHO)
        service.upload("probe.py", PROBE)
        reply = service.run("probe.py", {"data_dir": str(service.data_dir)})
        answer = reply.json()
        assert reply.status_code == 200 and answer["success"] is True, reply.text
        # The run ran sandboxed in the job, as on the service's own engine (as root too).
        result = answer["result"]
        assert result["uid"] != 0 and result["no_new_privs"] == "1", result
        assert result["seccomp"] == "2" and int(result["cap_eff"], 16) == 0, result
        assert result["sees_data"] is False
        record = service.record(answer["run_id"])
        assert record["worker"].startswith("SLURMCluster-"), record

        ran_on = _grows_under_load_and_shrinks(service, 2, lambda: len(slurm.jobs("-t", "R")))
        assert len(ran_on) == 2
    # Stopping the configuration cancels its jobs.
    _wait(lambda: not slurm.jobs(), 30, "jobs outlived the configuration")
