"""One cgroup per execution slot (memory and process count), where the machine lets us make them.

Resource limits (rlimits) bound each process of a run; a cgroup bounds the run as a whole: all its
processes together, and memory that rlimits do not see (its private /tmp, page cache). The service
makes, beside its own cgroup, `gitscripts-<pid>/slot-N` for each concurrent slot, in every
controller hierarchy it can write (cgroup v1's memory and pids, or v2's unified tree with those
controllers enabled); a runner joins its slot's cgroup before it builds its sandbox. Without write
access (an ordinary user without a delegated cgroup, a read-only /sys/fs/cgroup) there are none,
and the service says so: the rlimits still apply.
"""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path

_ROOT = Path("/sys/fs/cgroup")


@dataclass
class SlotCgroups:
    parents: dict[str, str] = field(default_factory=dict)  # controller -> the slots' parent
    unavailable: str = ""  # why there are none

    def kill_strays(self, slot: int) -> None:
        """Kill whatever is still in a slot's cgroup before the slot runs again: a run's processes
        die with it, but a fork server that died mid-run leaves nobody to make sure of it."""
        for parent in self.parents.values():
            try:
                pids = Path(parent, f"slot-{slot}", "cgroup.procs").read_text().split()
            except OSError:
                continue
            for pid in pids:
                with contextlib.suppress(OSError):
                    os.kill(int(pid), signal.SIGKILL)
            return  # every controller holds the same processes

    def remove(self) -> None:
        for parent in self.parents.values():
            for slot in Path(parent).glob("slot-*"):
                with contextlib.suppress(OSError):
                    slot.rmdir()
            with contextlib.suppress(OSError):
                Path(parent).rmdir()


def _own_paths() -> dict[str, str]:
    """controller (or "" for v2) -> this process's cgroup path in that hierarchy."""
    paths = {}
    with open("/proc/self/cgroup") as handle:
        for line in handle:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for controller in controllers.split(",") if controllers else [""]:
                paths[controller] = path
    return paths


def _mount_of(controller: str) -> Path | None:
    """Where the hierarchy of a v1 controller ("" for the v2 tree) is mounted."""
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            before, after = line.split(" - ", 1)
            fstype, _, options = after.split()[:3]
            mount_point = Path(before.split()[4])
            if controller == "" and fstype == "cgroup2":
                return mount_point
            if controller and fstype == "cgroup" and controller in options.split(","):
                return mount_point
    return None


def _make(parent: Path, slots: int, limits: dict[str, str]) -> None:
    parent.mkdir(exist_ok=True)
    for slot in range(slots):
        directory = parent / f"slot-{slot}"
        directory.mkdir(exist_ok=True)
        for name, value in limits.items():
            if (directory / name).exists():
                (directory / name).write_text(value)


def prepare(slots: int, memory_bytes: int, processes: int) -> SlotCgroups:
    tag = f"gitscripts-{os.getpid()}"
    result = SlotCgroups()
    try:
        own = _own_paths()
    except OSError as exc:
        return SlotCgroups(unavailable=f"cannot read /proc/self/cgroup: {exc}")
    v1 = {
        "memory": {
            "memory.limit_in_bytes": str(memory_bytes),
            "memory.memsw.limit_in_bytes": str(memory_bytes),
        },
        "pids": {"pids.max": str(processes)},
    }
    reasons = []
    for controller, limits in v1.items():
        mount = _mount_of(controller) if controller in own else None
        if mount is None:
            continue
        parent = mount / own[controller].lstrip("/") / tag
        try:
            _make(parent, slots, limits)
            result.parents[controller] = str(parent)
        except OSError as exc:
            reasons.append(f"{controller}: {exc.strerror or exc}")
    if not result.parents and "" in own and (mount := _mount_of("")) is not None:
        parent = mount / own[""].lstrip("/") / tag
        try:
            parent.mkdir(exist_ok=True)
            (parent / "cgroup.subtree_control").write_text("+memory +pids")
            _make(parent, slots, {"memory.max": str(memory_bytes), "memory.swap.max": "0",
                                  "pids.max": str(processes)})  # fmt: skip
            result.parents["unified"] = str(parent)
        except OSError as exc:
            with contextlib.suppress(OSError):
                for slot in parent.glob("slot-*"):
                    slot.rmdir()
                parent.rmdir()
            reasons.append(f"cgroup v2: {exc.strerror or exc}")
    if not result.parents:
        result.unavailable = "; ".join(reasons) or "no writable cgroup hierarchy"
    return result
