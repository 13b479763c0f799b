"""gitscripts workers as SLURM jobs with dask-jobqueue, scaled to the load.

Run it where both the service and the compute nodes reach it (a login node, say):

    export WORKER_TOKEN=...  # the service's worker credential
    python jobqueue_slurm.py --service http://login1:8000 --queue normal --maximum-jobs 20

and the service with `EXECUTOR=dask DASK_SCHEDULER_ADDRESS=tcp://login1:8786
DASK_SCHEDULER_QUEUE=40`. It starts a Dask scheduler here and submits jobs (`sbatch`) that each
start one `gitscripts worker` running `--cores` runs at once; adaptive scaling keeps between
`--minimum-jobs` and `--maximum-jobs` jobs, submitting more while runs wait and cancelling
(`scancel`) idle ones. Ctrl-C (or SIGTERM) cancels every job and stops the scheduler.

The worker credential reaches the jobs in their job script (`export WORKER_TOKEN=...`), which
SLURM keeps readable to you and its administrators only.
"""

import argparse
import os
import shlex
import signal
import socket
import sys
import threading

from dask_jobqueue import SLURMCluster

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument(
    "--service",
    default=os.environ.get("SERVICE_URL"),
    help="the service as the compute nodes reach it (default: SERVICE_URL)",
)
parser.add_argument(
    "--host",
    default=socket.gethostname(),
    help="the scheduler's address as the compute nodes reach it",
)
parser.add_argument(
    "--interface",
    help="or the network interface for the scheduler and the workers, e.g. ib0 (instead of --host)",
)
parser.add_argument("--port", type=int, default=8786, help="the scheduler's port")
parser.add_argument("--cores", type=int, default=1, help="runs at once per job")
parser.add_argument("--memory", default="2GB", help="per job (sbatch --mem)")
parser.add_argument("--walltime", default="01:00:00", help="per job (sbatch -t)")
parser.add_argument("--queue", help="the partition (sbatch -p)")
parser.add_argument("--account", help="sbatch -A")
parser.add_argument("--minimum-jobs", type=int, default=1)
parser.add_argument("--maximum-jobs", type=int, default=10)
parser.add_argument("--log-directory", help="where the jobs' output goes")
args = parser.parse_args()
token = os.environ.get("WORKER_TOKEN")
if not args.service or not token:
    sys.exit("--service (or SERVICE_URL) and WORKER_TOKEN are needed")

stop = threading.Event()
for signum in (signal.SIGINT, signal.SIGTERM):
    signal.signal(signum, lambda *_: stop.set())

where = {"interface": args.interface} if args.interface else {"host": args.host}
with SLURMCluster(
    cores=args.cores,
    processes=1,  # one gitscripts worker per job; it runs `cores` runs at once
    memory=args.memory,
    walltime=args.walltime,
    queue=args.queue,
    account=args.account,
    python=sys.executable,  # the jobs' Python (a shared path), with gitscripts[dask] installed
    worker_command="gitscripts worker",
    worker_extra_args=["--service", args.service],
    job_script_prologue=[
        f"export WORKER_TOKEN={shlex.quote(token)}",
        # SLURM sets ENVIRONMENT=BATCH in every batch job, and ENVIRONMENT is a gitscripts
        # setting: production, so that the worker refuses to start without its full sandbox.
        "export ENVIRONMENT=production",
    ],
    interface=args.interface,
    scheduler_options={**where, "port": args.port},
    log_directory=args.log_directory,
) as cluster:
    # At least one job: with no worker at all the service submits nothing.
    cluster.adapt(minimum_jobs=args.minimum_jobs, maximum_jobs=args.maximum_jobs)
    print(f"Scheduler at {cluster.scheduler_address}", flush=True)
    stop.wait()
