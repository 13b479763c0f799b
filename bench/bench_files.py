"""File store benchmark: a 1 GiB upload and download through the API, against a plain file copy.

    uv run python bench/bench_files.py               # 1 GiB (about half a minute)
    uv run python bench/bench_files.py --size-mib 256 --rounds 3

It writes a file of random bytes, copies it with `shutil.copyfile` (the baseline: what the disk
does without HTTP), then starts `gitscripts serve` on a fresh `DATA_DIR` (local file store,
`MAX_FILE_SIZE` above the file size) and, over HTTP with `httpx`, uploads the file as multipart
(`POST /api/v1/files/upload`, streamed from disk) and downloads it again (`GET /api/v1/files/{key}`,
streamed to disk). Throughput is bytes over wall time of each transfer; the server's peak memory
growth is its peak resident set during the transfer (VmHWM, reset before each transfer through
/proc/<pid>/clear_refs; sampled RSS where that is not allowed) minus its resident set before.
The downloaded file is checked against the original. It prints a markdown table and always exits 0.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from _common import server_process, sign_in, work_directory

MIB = 1 << 20
TARGET_MB_S = 200.0
TARGET_GROWTH_MIB = 64.0


def _status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/{pid}/status")


class PeakMemory:
    """The peak resident set of a process over a block, in KiB."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.before_kib = 0
        self.peak_kib = 0
        self.method = ""

    @contextlib.contextmanager
    def watch(self) -> Iterator[None]:
        self.before_kib = _status_kib(self.pid, "VmRSS")
        try:
            with open(f"/proc/{self.pid}/clear_refs", "w") as clear:
                clear.write("5")  # resets VmHWM to the current RSS
            self.method = "VmHWM"
        except OSError:
            self.method = "RSS sampled every 5 ms"
        sampled = [self.before_kib]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.005):
                sampled.append(_status_kib(self.pid, "VmRSS"))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            yield
        finally:
            done.set()
            sampler.join()
            self.peak_kib = max(sampled)
            if self.method == "VmHWM":
                self.peak_kib = max(self.peak_kib, _status_kib(self.pid, "VmHWM"))

    @property
    def growth_mib(self) -> float:
        return (self.peak_kib - self.before_kib) / 1024


@dataclass
class Row:
    operation: str
    size: int
    seconds: float
    growth_mib: float | None = None

    @property
    def mb_s(self) -> float:
        return self.size / 1e6 / self.seconds


def _upload(client: httpx.Client, source: Path) -> httpx.Response:
    """Multipart, streamed from disk by httpx."""
    with open(source, "rb") as handle:
        files = {"file": ("source.bin", handle, "application/octet-stream")}
        return client.post("/api/v1/files/upload", files=files)


def _download(client: httpx.Client, key: str, target: Path) -> None:
    with client.stream("GET", f"/api/v1/files/{key}") as response:
        response.raise_for_status()
        with open(target, "wb") as handle:
            for chunk in response.iter_raw(MIB):
                handle.write(chunk)


def _random_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    block = os.urandom(16 * MIB)
    with open(path, "wb") as handle:
        written = 0
        while written < size:
            # Each block differs (a counter in front) so nothing downstream can dedupe it.
            chunk = (written.to_bytes(8, "little") + block)[: min(16 * MIB, size - written)]
            handle.write(chunk)
            digest.update(chunk)
            written += len(chunk)
    return digest.hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(16 * MIB):
            digest.update(chunk)
    return digest.hexdigest()


def run(size: int, rounds: int, work: Path) -> list[Row]:
    source = work / "source.bin"
    print(f"writing {size / MIB:.0f} MiB of random bytes ...", flush=True)
    expected = _random_file(source, size)
    rows: list[Row] = []
    for _ in range(rounds):
        copy = work / "copy.bin"
        started = time.perf_counter()
        shutil.copyfile(source, copy)
        seconds = time.perf_counter() - started
        copy.unlink()
        rows.append(Row("plain file copy (baseline)", size, seconds))

    data_dir = work / "data"
    env = {"MAX_FILE_SIZE": str(size + MIB)}
    print("starting the server ...", flush=True)
    with server_process(data_dir, work / "server.log", env) as (base_url, process):
        memory = PeakMemory(process.pid)
        with httpx.Client(base_url=base_url, timeout=600) as client:
            sign_in(client, "bench")
            for round_ in range(rounds):
                print(f"round {round_ + 1}: upload ...", flush=True)
                with memory.watch():
                    started = time.perf_counter()
                    reply = _upload(client, source)
                    seconds = time.perf_counter() - started
                if reply.status_code != 200 or reply.json()["size"] != size:
                    raise RuntimeError(f"upload failed: {reply.status_code} {reply.text}")
                rows.append(Row("upload via API", size, seconds, memory.growth_mib))
                key = reply.json()["key"]

                print(f"round {round_ + 1}: download ...", flush=True)
                target = work / "downloaded.bin"
                with memory.watch():
                    started = time.perf_counter()
                    _download(client, key, target)
                    seconds = time.perf_counter() - started
                rows.append(Row("download via API", size, seconds, memory.growth_mib))
                if _sha256(target) != expected:
                    raise RuntimeError("the downloaded file differs from the uploaded one")
                target.unlink()
                client.delete(f"/api/v1/files/{key}").raise_for_status()
    print(f"peak memory measured with {memory.method}", flush=True)
    return rows


def report(rows: list[Row]) -> None:
    print()
    print("| operation | size | time (s) | MB/s | server peak memory growth | target | result |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        if row.growth_mib is None:
            target, verdict, growth = "baseline", "", "-"
        else:
            growth = f"{row.growth_mib:.1f} MiB"
            target = f">= {TARGET_MB_S:.0f} MB/s, <= {TARGET_GROWTH_MIB:.0f} MiB"
            ok = row.mb_s >= TARGET_MB_S and row.growth_mib <= TARGET_GROWTH_MIB
            verdict = "PASS" if ok else "FAIL"
        print(
            f"| {row.operation} | {row.size / MIB:.0f} MiB | {row.seconds:.2f} | "
            f"{row.mb_s:.0f} | {growth} | {target} | {verdict} |"
        )
    load = os.getloadavg()[0]
    print(f"\n{os.cpu_count()} CPUs, load average (1 min) at the end: {load:.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="file size (default 1024)")
    parser.add_argument("--rounds", type=int, default=1, help="transfers each way (default 1)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    with work_directory("gitscripts-bench-files-", args.keep) as work:
        report(run(args.size_mib * MIB, args.rounds, work))
    return 0


if __name__ == "__main__":
    sys.exit(main())
