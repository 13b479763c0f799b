"""gitscripts workers as dask-jobqueue jobs on this machine: dask-jobqueue's local test cluster
(`dask_jobqueue.local.LocalCluster`), which runs the same job script as a real queue would, with
the shell instead of `sbatch`. For trying the jobqueue path without a queue; on a cluster, use
`jobqueue_slurm.py`.

    export WORKER_TOKEN=...  # the service's worker credential
    python jobqueue_local.py --service http://127.0.0.1:8000 --maximum-jobs 3

and the service with `EXECUTOR=dask DASK_SCHEDULER_ADDRESS=tcp://127.0.0.1:8786
DASK_SCHEDULER_QUEUE=8`. Each job is one `gitscripts worker` running one run at a time
(`--cores`); adaptive scaling keeps between `--minimum-jobs` and `--maximum-jobs` of them.
Ctrl-C (or SIGTERM) stops the jobs and the scheduler.
"""

import argparse
import os
import signal
import sys
import threading

from dask_jobqueue.local import LocalCluster

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument(
    "--service", default=os.environ.get("SERVICE_URL"), help="the service (default: SERVICE_URL)"
)
parser.add_argument("--host", default="127.0.0.1", help="the scheduler's address")
parser.add_argument("--port", type=int, default=8786, help="the scheduler's port")
parser.add_argument("--cores", type=int, default=1, help="runs at once per job")
parser.add_argument("--memory", default="2GB", help="per job")
parser.add_argument("--minimum-jobs", type=int, default=1)
parser.add_argument("--maximum-jobs", type=int, default=3)
args = parser.parse_args()
if not args.service or "WORKER_TOKEN" not in os.environ:
    sys.exit("--service (or SERVICE_URL) and WORKER_TOKEN are needed")

stop = threading.Event()
for signum in (signal.SIGINT, signal.SIGTERM):
    signal.signal(signum, lambda *_: stop.set())

# The jobs are children of this process: they inherit WORKER_TOKEN from its environment.
with LocalCluster(
    cores=args.cores,
    processes=1,  # one gitscripts worker per job; it runs `cores` runs at once
    memory=args.memory,
    python=sys.executable,  # the jobs' Python, with gitscripts[dask] installed
    worker_command="gitscripts worker",
    worker_extra_args=["--service", args.service],
    scheduler_options={"host": args.host, "port": args.port},
) as cluster:
    # At least one job: with no worker at all the service submits nothing.
    cluster.adapt(minimum_jobs=args.minimum_jobs, maximum_jobs=args.maximum_jobs)
    print(f"Scheduler at {cluster.scheduler_address}", flush=True)
    stop.wait()
