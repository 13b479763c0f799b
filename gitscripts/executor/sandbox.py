"""The sandbox every run is born in: fresh namespaces, a minimal root, no privilege, a syscall filter.

A script is hostile code. Whatever it does, it may affect only its own run. The construction follows
bubblewrap and nsjail; what a run could change is made anew for every run, what it cannot is made
once per fork server and shared:

- Once (`prepare`), in the fork server: as an ordinary user, a user namespace of its own (mapping
  only its own uid) for the privilege to build the rest; a PID namespace it lives in as the first
  process, so that it can return to it after forking each run into a new one; each slot's network
  namespace, with only a loopback (a slot runs one run at a time, and no run has any privilege
  over it); an IPC namespace, which stays empty because the seccomp filter refuses every call
  that would put something in it (where the kernel refuses the filter, each run makes its own);
  each slot's cgroup.procs, open; and the runs' skeleton root, in a mount namespace of its own:
  a tmpfs holding only what a script needs, each read-only (the system's /usr, /etc and the
  /lib, /bin links, the Python installation, the gitscripts package, the checkout cache), a /dev
  with only null, zero, full, random and urandom, and the file API's Unix socket when runs have
  no network. The service's data directory, its other files, the execution root and every other
  run are not hidden there: they do not exist. All of it is kept as descriptors (`Shared`), with
  the arguments of each run's own mounts and the seccomp filter, ready for the kernel.
- Per run, in the run's one process, forked into a new PID namespace (`fork_run`): it sees only
  its own run's processes, and when it ends the kernel kills everything the script started.
  `outer`, still privileged: it joins its slot's cgroup (as root), enters its slot's network
  namespace, the IPC namespace and the skeleton's mount namespace, unshares a private copy of
  the mounts with new UTS and cgroup namespaces, and mounts its own /tmp, /dev/shm and scratch
  tmpfs. `inner`: it mounts its own /proc, drops privilege for good (as root, the slot's own uid
  from a pool that owns nothing of the service's), enters a nested user namespace, which does
  not own the run's mounts, so none can be unmounted or made writable (as bubblewrap does),
  drops every capability and the bounding set, sets no_new_privs, hard resource limits (soft =
  hard) and the seccomp filter against the calls a sandbox escape needs. Only then does it take
  its job (see `worker`).

The fork server and the service are outside every run's PID namespace: a script cannot see,
signal, trace or write to them. Where the kernel refuses a step, `probe` finds out at start-up; the
service then refuses to start (`EXECUTION_SANDBOX=strict`) or says exactly which protections are
active (`auto`).

Standard library only: it runs inside the fork server and the fresh-interpreter worker.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import os
import platform
import resource
import signal
import socket
import struct
import sys
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

from gitscripts.executor.protocol import Limits

_libc = ctypes.CDLL(None, use_errno=True)
# Looked up here, once, in the fork server: every run is a fork of it, and a run that looked each
# one up itself would pay for it on every run (a tenth of a millisecond, for mount alone).
for _function in ("mount", "umount2", "unshare", "setns", "prctl", "syscall"):
    getattr(_libc, _function)

# -- kernel constants ---------------------------------------------------------------------------
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWTIME = 0x00000080
_NAMESPACE_FLAGS = (
    CLONE_NEWNS
    | CLONE_NEWCGROUP
    | CLONE_NEWUTS
    | CLONE_NEWIPC
    | CLONE_NEWUSER
    | CLONE_NEWPID
    | CLONE_NEWNET
    | CLONE_NEWTIME
)

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC = 32, 4096, 16384
MS_NOATIME, MS_NODIRATIME, MS_RELATIME = 1024, 2048, 1 << 21
MS_PRIVATE = 1 << 18
MNT_DETACH = 2
# statvfs flags -> the mount flags a remount inside a user namespace must keep (they are locked).
_KEPT_FLAGS = {
    os.ST_NOSUID: MS_NOSUID,
    os.ST_NODEV: MS_NODEV,
    os.ST_NOEXEC: MS_NOEXEC,
    os.ST_NOATIME: MS_NOATIME,
    os.ST_NODIRATIME: MS_NODIRATIME,
    os.ST_RELATIME: MS_RELATIME,
}

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_SECCOMP = 22
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
SECCOMP_MODE_FILTER = 2
_LINUX_CAPABILITY_VERSION_3 = 0x20080522

_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1

# Where things appear inside the run.
FILES_SOCKET_IN_RUN = "/run/gitscripts/files.sock"
HOSTNAME = "gitscripts-run"

# The protections a strict sandbox needs, by the name the service reports them under.
ESSENTIAL = (
    "namespaces",
    "private_root",
    "own_uid",
    "capabilities_dropped",
    "no_new_privs",
    "seccomp",
    "locked_mounts",
    "hard_limits",
)


class SandboxError(OSError):
    """A step of the sandbox failed: the run must not go on without it."""


@dataclass(frozen=True)
class SandboxConfig:
    """What the service tells every runner about the sandbox (sent as JSON to the fork server)."""

    enabled: bool
    network: str  # "none", "loopback-service" or "host"
    # Where the service leaves each run's job, in a folder named by the run (see `worker`).
    jobs: str = ""
    # Runs at once: each slot has its own uid (as root), cgroup and runner built ahead of time.
    slots: int = 1
    # The limits every run starts with (a job may only lower them), as in a job's header.
    limits: Limits = field(default_factory=lambda: Limits())
    # Read-only in the run, at their own paths: the Python installation and the package.
    readonly: list[str] = field(default_factory=list)
    # Directories whose contents the run sees read-only (the checkout cache).
    checkouts: str = ""
    # The service's file API on a Unix socket: bound into a run without network.
    files_socket: str = ""
    # loopback-service: the port the run's loopback relays to that socket (the service's own).
    service_port: int = 0
    # An empty directory on which each run mounts its new root.
    mount_point: str = ""
    uid_base: int = 0  # as root: slot N runs as uid/gid uid_base + N
    tmp_size_bytes: int = 64 << 20
    scratch_size_bytes: int = 1 << 30
    cgroups: dict[str, str] = field(default_factory=dict)  # controller -> the slots' parent
    # Steps the probe found the kernel refuses (auto mode runs without them).
    skip: list[str] = field(default_factory=list)

    @classmethod
    def from_json(cls, text: str) -> SandboxConfig:
        return cls(**json.loads(text)) if text else cls(enabled=False, network="host")

    def to_json(self) -> str:
        return json.dumps(asdict(self))


# -- system calls -------------------------------------------------------------------------------
def _check(result: int, what: str, subject: str = "") -> int:
    if result < 0:
        number = ctypes.get_errno()
        what = f"{what} {subject}" if subject else what
        raise SandboxError(number, f"{what}: {os.strerror(number)}")
    return result


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    _check(
        _libc.mount(
            source.encode() if source else None,
            target.encode(),
            fstype.encode() if fstype else None,
            ctypes.c_ulong(flags),
            data.encode() if data else None,
        ),
        "mount",
        target,
    )


def _prctl(option: int, arg: int = 0, what: str = "prctl") -> None:
    _check(
        _libc.prctl(
            option, ctypes.c_ulong(arg), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0)
        ),
        what,
    )


def _unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


_SYSCALLS: dict[str, dict[str, int]] = {
    # name: number, for the architectures this filter knows (x86_64 and aarch64).
    "x86_64": {
        "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311, "mount": 165,
        "umount2": 166, "unshare": 272, "setns": 308, "pivot_root": 155, "chroot": 161,
        "keyctl": 250, "add_key": 248, "request_key": 249, "bpf": 321, "perf_event_open": 298,
        "userfaultfd": 323, "init_module": 175, "finit_module": 313, "delete_module": 176,
        "kexec_load": 246, "kexec_file_load": 320, "reboot": 169, "swapon": 167, "swapoff": 168,
        "acct": 163, "quotactl": 179, "syslog": 103, "open_by_handle_at": 304,
        "name_to_handle_at": 303, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
        "fspick": 433, "move_mount": 429, "open_tree": 428, "mount_setattr": 442,
        "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
        "settimeofday": 164, "clock_settime": 227, "clock_adjtime": 305, "adjtimex": 159,
        "iopl": 172, "ioperm": 173, "vhangup": 153, "personality": 135, "uselib": 134,
        "sethostname": 170, "setdomainname": 171, "kcmp": 312, "lookup_dcookie": 212,
        "pidfd_getfd": 438, "quotactl_fd": 443,
        "shmget": 29, "shmat": 30, "shmctl": 31, "shmdt": 67, "semget": 64, "semop": 65,
        "semctl": 66, "semtimedop": 220, "msgget": 68, "msgsnd": 69, "msgrcv": 70, "msgctl": 71,
        "mq_open": 240, "mq_unlink": 241, "mq_timedsend": 242, "mq_timedreceive": 243,
        "mq_notify": 244, "mq_getsetattr": 245,
        "clone": 56, "clone3": 435, "ioctl": 16, "socket": 41,
    },
    "aarch64": {
        "ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271, "mount": 40,
        "umount2": 39, "unshare": 97, "setns": 268, "pivot_root": 41, "chroot": 51,
        "keyctl": 219, "add_key": 217, "request_key": 218, "bpf": 280, "perf_event_open": 241,
        "userfaultfd": 282, "init_module": 105, "finit_module": 273, "delete_module": 106,
        "kexec_load": 104, "kexec_file_load": 294, "reboot": 142, "swapon": 224, "swapoff": 225,
        "acct": 89, "quotactl": 60, "syslog": 116, "open_by_handle_at": 265,
        "name_to_handle_at": 264, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
        "fspick": 433, "move_mount": 429, "open_tree": 428, "mount_setattr": 442,
        "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
        "settimeofday": 170, "clock_settime": 112, "clock_adjtime": 266, "adjtimex": 171,
        "vhangup": 58, "personality": 92, "sethostname": 161, "setdomainname": 162,
        "kcmp": 272, "lookup_dcookie": 18, "pidfd_getfd": 438, "quotactl_fd": 443,
        "shmget": 194, "shmat": 196, "shmctl": 195, "shmdt": 197, "semget": 190, "semop": 193,
        "semctl": 191, "semtimedop": 192, "msgget": 186, "msgsnd": 189, "msgrcv": 188,
        "msgctl": 187, "mq_open": 180, "mq_unlink": 181, "mq_timedsend": 182,
        "mq_timedreceive": 183, "mq_notify": 184, "mq_getsetattr": 185,
        "clone": 220, "clone3": 435, "ioctl": 29, "socket": 198,
    },
}  # fmt: skip
_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
# Calls the sandbox makes itself that the C library does not wrap (pivot_root is in the table above).
_CAPSET = {"x86_64": 126, "aarch64": 91}
_TIOCSTI, _TIOCLINUX = 0x5412, 0x541C


# -- seccomp ------------------------------------------------------------------------------------
def _bpf(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k)


_LD_W_ABS, _JEQ, _JSET, _JGE, _RET = 0x20, 0x15, 0x45, 0x35, 0x06
_RET_ALLOW, _RET_KILL = 0x7FFF0000, 0x80000000
_RET_ERRNO = 0x00050000
# The calls whose verdict depends on their arguments (or is not EPERM): each has a block of its own.
_SPECIAL = ("clone", "clone3", "ioctl", "socket")

_Jump = int | str  # a relative offset, or the label of an instruction further on


def _assemble(program: list[tuple[int, _Jump, _Jump, int] | str]) -> bytes:
    """Classic BPF from instructions whose jumps may name a label (a str in the list) ahead."""
    labels: dict[str, int] = {}
    instructions: list[tuple[int, _Jump, _Jump, int]] = []
    for item in program:
        if isinstance(item, str):
            labels[item] = len(instructions)
        else:
            instructions.append(item)

    def offset(jump: _Jump, at: int) -> int:
        value = jump if isinstance(jump, int) else labels[jump] - at - 1
        assert 0 <= value <= 255, "a classic BPF jump goes forward, at most 255 instructions"
        return value

    return b"".join(
        _bpf(code, offset(jt, at), offset(jf, at), k)
        for at, (code, jt, jf, k) in enumerate(instructions)
    )


def _search(
    intervals: list[tuple[int, str]],
) -> tuple[list[tuple[int, _Jump, _Jump, int] | str], str]:
    """A binary search over intervals of call numbers, each (its first number, its verdict's
    label), sorted: the code, and where to jump to run it. A call takes a handful of comparisons
    to its verdict, not one per listed call. That matters to the kernel most: installing a filter
    runs it for every call number of the architecture (to cache the ones it always allows), so a
    linear list cost every run a tenth of a millisecond."""
    if len(intervals) == 1:
        return [], intervals[0][1]
    middle = len(intervals) // 2
    below, below_start = _search(intervals[:middle])
    above, above_start = _search(intervals[middle:])
    here = f"from-{intervals[0][0]}-to-below-{intervals[-1][0]}"
    return [here, (_JGE, above_start, below_start, intervals[middle][0]), *below, *above], here


def _intervals(labels: dict[int, str], machine: str) -> list[tuple[int, str]]:
    """Runs of consecutive call numbers with the same verdict; what is not listed is allowed."""
    intervals: list[tuple[int, str]] = []
    for number in range(max(labels) + 2):
        label = labels.get(number, "allow")
        if not intervals or intervals[-1][1] != label:
            intervals.append((number, label))
    if machine == "x86_64":  # the x32 ABI reuses numbers with this bit: refuse it whole
        intervals.append((0x40000000, "eperm"))
    return intervals


def seccomp_program(machine: str | None = None) -> bytes:
    """A classic-BPF deny-list: the calls a sandbox escape or a neighbour's snooping needs.

    Denied calls fail with EPERM (so a library that probes them carries on); clone3 fails with
    ENOSYS so the C library falls back to clone, whose flags the filter can read; new namespaces
    are refused either way. A foreign architecture (x32 or 32-bit calls on x86_64) is killed.
    SysV IPC and POSIX message queues are refused too: runs share one IPC namespace (see
    `Shared`), which stays empty because no run can put anything in it.
    """
    machine = machine or platform.machine()
    numbers = _SYSCALLS[machine]
    labels = {number: name if name in _SPECIAL else "eperm" for name, number in numbers.items()}
    search, _ = _search(_intervals(labels, machine))
    program: list[tuple[int, _Jump, _Jump, int] | str] = [
        (_LD_W_ABS, 0, 0, 4),  # seccomp_data.arch
        (_JEQ, 1, 0, _AUDIT_ARCH[machine]),
        (_RET, 0, 0, _RET_KILL),
        (_LD_W_ABS, 0, 0, 0),  # seccomp_data.nr
    ]
    program += [
        *search,
        "clone3",
        (_RET, 0, 0, _RET_ERRNO | errno.ENOSYS),
        "clone",
        (_LD_W_ABS, 0, 0, 16),  # args[0] (flags), low word
        (_JSET, "eperm", "allow", _NAMESPACE_FLAGS),
        "ioctl",
        (_LD_W_ABS, 0, 0, 24),  # args[1] (request), low word
        (_JEQ, "eperm", 0, _TIOCSTI),
        (_JEQ, "eperm", "allow", _TIOCLINUX),
        # Sockets of the families a script has a use for; not vsock (which no network namespace
        # isolates), packet, bluetooth, ...
        "socket",
        (_LD_W_ABS, 0, 0, 16),  # args[0] (family), low word
        (_JEQ, "allow", 0, socket.AF_UNIX),
        (_JEQ, "allow", 0, socket.AF_INET),
        (_JEQ, "allow", 0, socket.AF_INET6),
        (_JEQ, "allow", "eperm", socket.AF_NETLINK),
        "allow",
        (_RET, 0, 0, _RET_ALLOW),
        "eperm",
        (_RET, 0, 0, _RET_ERRNO | errno.EPERM),
    ]
    return _assemble(program)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class _Filter:
    """A program ready for the kernel, built once: a run installs it with a single call."""

    def __init__(self, program: bytes) -> None:
        self.buffer = ctypes.create_string_buffer(program)
        self.fprog = _SockFprog(len(program) // 8, ctypes.cast(self.buffer, ctypes.c_void_p))
        zero = ctypes.c_ulong(0)
        mode = ctypes.c_ulong(SECCOMP_MODE_FILTER)
        self.arguments = (PR_SET_SECCOMP, mode, ctypes.pointer(self.fprog), zero, zero)

    def install(self) -> None:
        _check(_libc.prctl(*self.arguments), "seccomp")


def install_seccomp(program: bytes) -> None:
    _Filter(program).install()


# -- capabilities and identity ------------------------------------------------------------------
def _last_capability() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as handle:
            return int(handle.read())
    except OSError:
        return 40


_LAST_CAP = _last_capability()


_CAPABILITIES = tuple(ctypes.c_ulong(cap) for cap in range(_LAST_CAP + 1))


def _drop_bounding_set() -> None:
    """No capability can ever come back (by exec of a privileged file, or a uid change).

    Each run does this twice (a new user namespace fills the bounding set again), so the loop
    is as plain as it can be; a capability this kernel lacks answers EINVAL, which is fine, and
    the sandbox tests read the outcome (CapBnd) from /proc."""
    prctl, zero = _libc.prctl, ctypes.c_ulong(0)
    for cap in _CAPABILITIES:
        prctl(PR_CAPBSET_DROP, cap, zero, zero, zero)
    prctl(PR_CAP_AMBIENT, ctypes.c_ulong(PR_CAP_AMBIENT_CLEAR_ALL), zero, zero, zero)


def drop_capabilities() -> None:
    """No capability left: effective, permitted, inheritable, bounding and ambient all empty."""
    _drop_bounding_set()
    _check(_libc.syscall(*_CAPSET_ARGUMENTS), "capset")


# capset(header, data): version 3, this process; two (effective, permitted, inheritable) triples,
# all empty. Made once: the kernel may write its preferred version into the header.
_CAPSET_ARGUMENTS = (
    ctypes.c_long(_CAPSET.get(platform.machine(), -1)),
    ctypes.create_string_buffer(struct.pack("Ii", _LINUX_CAPABILITY_VERSION_3, 0), 8),
    ctypes.create_string_buffer(24),
)


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _enter_user_namespace(extra_flags: int) -> None:
    """A new user namespace that maps only our own uid and gid, plus `extra_flags` namespaces."""
    uid, gid = os.geteuid(), os.getegid()
    # An undumpable process's /proc files are root's (the fork server is undumpable, and so is
    # a process that changed its uid): it could not write its own maps.
    _prctl(PR_SET_DUMPABLE, 1, "dumpable")
    _unshare(CLONE_NEWUSER | extra_flags)
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"{uid} {uid} 1\n")
    _write("/proc/self/gid_map", f"{gid} {gid} 1\n")


def become(uid: int, gid: int) -> None:
    """As root: be `uid` for good (no supplementary groups; the capabilities go with root).

    The bounding set is emptied after, by `drop_capabilities`: nothing is executed in between,
    and the nested user namespace entered in between would fill it again anyway."""
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    # A change of uid clears the parent death signal: set it again, or a run whose supervisor
    # died would live on.
    set_parent_death_signal()


def set_parent_death_signal() -> None:
    """Be killed when the parent dies: a run never outlives the process supervising it."""
    _prctl(PR_SET_PDEATHSIG, 9, "parent death signal")


# -- the run's file system ------------------------------------------------------------------------
def _flags_of(path: str) -> int:
    kept = os.statvfs(path).f_flag
    return sum(flag for st, flag in _KEPT_FLAGS.items() if kept & st)


def _bind(source: str, target: str, *, readonly: bool) -> None:
    _mount(source, target, None, MS_BIND)
    if readonly:
        flags = MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | _flags_of(target)
        _mount(None, target, None, flags)


def _make_target(root: str, path: str, *, directory: bool) -> str:
    target = root + path
    if directory:
        os.makedirs(target, mode=0o755, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
        if not os.path.exists(target):
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT, 0o644))
    return target


_SYSTEM = ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_DEVICES = ("null", "zero", "full", "random", "urandom")


def _mapped(uid: int) -> bool:
    """Whether `uid` exists in our user namespace (not so for root of a namespace of its own)."""
    try:
        with open("/proc/self/uid_map") as handle:
            ranges = [tuple(map(int, line.split())) for line in handle]
    except OSError:
        return True
    return any(inside <= uid < inside + count for inside, _, count in ranges)


def run_uid(config: SandboxConfig, slot: int) -> int:
    """The uid the run's files and processes have: the slot's, as root; else the service's."""
    uid = config.uid_base + slot
    if config.enabled and os.geteuid() == 0 and "own_uid" not in config.skip and _mapped(uid):
        return uid
    return os.geteuid()


def _build_skeleton(config: SandboxConfig, binds: list[tuple[str, str]]) -> None:
    """Make the runs' root on `config.mount_point` and pivot into it (in a mount namespace of our
    own, which `prepare` keeps for every run to copy). Every mount here is read-only but the
    devices; what a run may write is mounted per run, on the empty folders left for it."""
    root = config.mount_point
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m")
    # A /dev of a few harmless devices.
    dev = _make_target(root, "/dev", directory=True)
    _mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=64k")
    for name in _DEVICES:
        _bind(f"/dev/{name}", _make_target(root, f"/dev/{name}", directory=False), readonly=False)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):  # fmt: skip
        os.symlink(target, f"{dev}/{name}")
    # Where each run mounts its own /proc and writable tmpfs.
    for path in ("/proc", *_PER_RUN_TMPFS):
        _make_target(root, path, directory=True)
    # In a user namespace the kernel mounts a new proc only beside a fully visible one: the
    # host's, which each run detaches as soon as its own is mounted (`mount_proc`). Root mounts
    # one without it, and so spares every run the detaching (each unmount costs the kernel a
    # grace period on every CPU).
    if os.geteuid() != 0:
        _mount("/proc", _make_target(root, _HOST_PROC, directory=True), None, MS_BIND | MS_REC)
    for path in _SYSTEM:
        if os.path.islink(path):  # merged /usr: /bin -> usr/bin
            os.symlink(os.readlink(path), root + path)
        elif os.path.isdir(path):
            _bind(path, _make_target(root, path, directory=True), readonly=True)
    for path, stash in binds:
        _bind(path, _make_target(root, stash or path, directory=True), readonly=True)
    if config.files_socket and config.network != "host":
        target = _make_target(root, FILES_SOCKET_IN_RUN, directory=False)
        _bind(config.files_socket, target, readonly=False)
    os.chdir(root)
    # pivot_root(".", "."): the old root ends up stacked on the new one, then is detached, so
    # the namespace holds nothing of the host's but what was bound in above.
    pivot_root = _SYSCALLS[platform.machine()]["pivot_root"]
    _check(_libc.syscall(ctypes.c_long(pivot_root), b".", b"."), "pivot_root")
    _check(_libc.umount2(b".", MNT_DETACH), "detach the old root")
    os.chdir("/")
    for path in ("/dev", "/"):
        _mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | _flags_of(path))


# Writable in a run, each a tmpfs of its own, gone with the run. The scratch tmpfs is bounded in
# size and files, and nothing the service ever walks or removes; the run's folder in it has a
# name of its own (`scratch_folder`), alone there: a run finds no trace of any other.
SCRATCH = "/scratch"
_HOST_PROC = "/.host-proc"  # in the skeleton only, never in a run (see `mount_proc`)
_PER_RUN_TMPFS = ("/tmp", "/dev/shm", SCRATCH)


def _binds(config: SandboxConfig) -> list[tuple[str, str]]:
    """The host folders a run sees read-only at their own paths, besides the system's: the Python
    installation, the package and the checkout cache (a bind of the folder: checkouts made later
    appear in it). Each with where the skeleton keeps it: "" (at its path), or a stash when its
    path lies under a per-run tmpfs (a checkout cache under /tmp), which would hide it; each run
    then binds it from the stash onto its own tmpfs."""
    chosen: list[str] = [
        path for path in _SYSTEM if os.path.isdir(path) and not os.path.islink(path)
    ]
    binds: list[tuple[str, str]] = []
    for path in [*config.readonly, *([config.checkouts] if config.checkouts else [])]:
        inside = any(path == seen or path.startswith(seen.rstrip("/") + "/") for seen in chosen)
        if os.path.isdir(path) and not inside:
            chosen.append(path)
            hidden = any(path == t or path.startswith(t + "/") for t in _PER_RUN_TMPFS)
            binds.append((path, f"/.stash/{len(binds)}" if hidden else ""))
    return binds


def scratch_folder() -> str:
    return f"{SCRATCH}/{os.urandom(8).hex()}"


class _Mount(NamedTuple):
    """One of a run's own mounts, its arguments made once (`_per_run_mounts`): a run only calls."""

    folders: tuple[str, ...]  # made first, on the run's fresh tmpfs beneath
    target: str
    arguments: tuple[bytes, bytes, bytes | None, ctypes.c_ulong, bytes | None]


def _per_run_mounts(
    config: SandboxConfig, stashed: tuple[tuple[str, str], ...]
) -> tuple[_Mount, ...]:
    """What each run mounts on its copy of the skeleton: its private /tmp, /dev/shm and scratch
    tmpfs, then the stashed folders bound back at their paths on its /tmp (a bind of the
    skeleton's read-only stash is read-only itself)."""
    flags = ctypes.c_ulong(MS_NOSUID | MS_NODEV)
    tmp = f"mode=1777,size={config.tmp_size_bytes}".encode()
    scratch = f"mode=0755,size={config.scratch_size_bytes},nr_inodes=65536".encode()
    mounts = [
        _Mount((), path, (b"tmpfs", path.encode(), b"tmpfs", flags, data))
        for path, data in (("/tmp", tmp), ("/dev/shm", tmp), (SCRATCH, scratch))
    ]
    made: set[str] = set()
    for path, stash in stashed:
        folders = []
        for root in _PER_RUN_TMPFS:
            if path.startswith(root + "/"):
                parts = path[len(root) + 1 :].split("/")
                folders = [root + "/" + "/".join(parts[: n + 1]) for n in range(len(parts))]
        bind = (stash.encode(), path.encode(), None, ctypes.c_ulong(MS_BIND), None)
        mounts.append(_Mount(tuple(f for f in folders if f not in made), path, bind))
        made.update(folders)
    return tuple(mounts)


def _mount_per_run(shared: Shared, slot: int, scratch: str) -> None:
    """In the run's own copy of the skeleton: its own writable mounts and its scratch folder."""
    for mount in shared.mounts:
        for folder in mount.folders:
            os.mkdir(folder, 0o755)
        _check(_libc.mount(*mount.arguments), "mount", mount.target)
    uid = shared.uids[slot]
    os.mkdir(scratch, 0o700)
    os.chown(scratch, uid, uid)


def mount_proc() -> str:
    """In the run's PID namespace: a /proc of its own processes only.

    Returns what /proc is: "own", or "empty" where the kernel refuses a new proc (a container
    that masks parts of the host's /proc).
    """
    os.chdir("/")
    try:
        _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        kind = "own"
    except SandboxError:
        _mount("tmpfs", "/proc", "tmpfs", MS_RDONLY, "mode=0555,size=4k")
        kind = "empty"
    if os.path.isdir(_HOST_PROC):
        _check(_libc.umount2(_HOST_PROC.encode(), MNT_DETACH), "detach the host's /proc")
    return kind


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH22x", b"lo", 0)  # struct ifreq: a name, then the flags
        flags = struct.unpack("16sH22x", fcntl.ioctl(sock, _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags | _IFF_UP))


def _open_cgroups(config: SandboxConfig) -> tuple[tuple[int, ...], ...]:
    """Per slot, its cgroups' cgroup.procs, opened once by the fork server (for each slot's runs
    to join with a write, not a lookup); none for a slot where one would not open."""
    slots = []
    for slot in range(config.slots):
        fds: list[int] = []
        try:
            for parent in config.cgroups.values():
                path = f"{parent}/slot-{slot}/cgroup.procs"
                fds.append(_out_of_the_way(os.open(path, os.O_WRONLY | os.O_CLOEXEC)))
        except OSError:
            for fd in fds:
                os.close(fd)
            fds = []
        slots.append(tuple(fds))
    return tuple(slots)


def _join_cgroups(config: SandboxConfig, shared: Shared, slot: int) -> None:
    fds = shared.cgroups[slot] if slot < len(shared.cgroups) else ()
    if len(fds) != len(config.cgroups):
        raise SandboxError(errno.ENOENT, "the slot's cgroups could not be opened")
    for fd in fds:
        os.write(fd, b"0")


# -- what runs share, and the two halves of a run -------------------------------------------------
@dataclass
class Outcome:
    """What was applied to this run; the probe reports it, runs ignore it."""

    applied: dict[str, str] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)

    def step(self, name: str, skip: list[str], action: Any, *, required: bool) -> Any:
        if name in skip:
            self.refused[name] = "refused by the kernel at start-up"
            return None
        try:
            result = action()
        except (OSError, ValueError) as exc:
            self.refused[name] = str(exc)
            if required:
                raise SandboxError(errno.EPERM, f"sandbox step {name!r} failed: {exc}") from exc
            return None
        self.applied[name] = result if isinstance(result, str) else "yes"
        return result


@dataclass(frozen=True)
class Shared:
    """What one fork server's runs share, made once by `prepare`; descriptors that no run holds.

    - Each slot's network namespace, with only a loopback. A slot runs one run at a time, and a
      run cannot change a namespace that its user namespace does not own (addresses, routes,
      sysctls), so nothing of a run outlives it there; its sockets die with its processes.
    - The mount namespace whose root is the runs' skeleton (`_build_skeleton`): read-only, and
      holding nothing of the host's but what is bound in. Each run enters it and unshares a
      private copy, then mounts its own /proc and writable tmpfs on it.
    - An IPC namespace, where the seccomp filter is active: it refuses every SysV IPC and POSIX
      message queue call, so nothing is ever put in it (POSIX shared memory is a file in the
      run's own /dev/shm). Not the host's: its /proc/sysvipc would show the host's objects. Each
      run making its own instead cost the kernel a mount and a grace period to take down.
    - Each slot's nested user namespace, owned by and mapping only the slot's uid (the service's,
      as an ordinary user): a run enters it (its owner may) and then drops every capability, so
      it holds no privilege over anything; it owns none of the run's mounts (`inner`), and a
      run without capabilities can change nothing in it (keyrings are refused by the filter).

    Building these once instead of per run is what keeps the sandbox cheap: a network namespace
    and a dozen bind mounts cost milliseconds each time, entering a made one microseconds.
    """

    uids: tuple[int, ...] = ()  # per slot: the uid its runs' processes and files have
    cgroups: tuple[tuple[int, ...], ...] = ()  # per slot: its cgroups (see `_open_cgroups`)
    networks: tuple[int, ...] = ()  # per slot: its network namespace
    skeleton: int = -1
    ipc: int = -1  # -1: each run makes its own (where the filter is refused)
    users: tuple[int, ...] = ()  # per slot: the user namespace its runs enter
    mounts: tuple[_Mount, ...] = ()  # what each run mounts on its copy of the skeleton
    # The fork server's own PID namespace, where it returns after forking each run into a new one
    # (see `fork_run`); -1 where the kernel refused namespaces.
    home: int = -1

    def kept_by(self, slot: int) -> set[int]:
        """The descriptors the slot's run needs (every other one it closes at once)."""
        cgroups = self.cgroups[slot] if slot < len(self.cgroups) else ()
        mine = (*self.networks[slot : slot + 1], *cgroups, self.skeleton, self.ipc)
        return {fd for fd in (*mine, self.user_of(slot)) if fd >= 0}

    def user_of(self, slot: int) -> int:
        return self.users[slot] if slot < len(self.users) else -1


def _namespace_of_self(kind: str) -> int:
    return os.open(f"/proc/self/ns/{kind}", os.O_RDONLY | os.O_CLOEXEC)


def _out_of_the_way(fd: int) -> int:
    """`fd` renumbered above the ones a runner places its pipes on (see `worker._run`)."""
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 200)
    os.close(fd)
    return high


def _new_networks(slots: int) -> list[int]:
    networks = []
    for _ in range(slots):
        _unshare(CLONE_NEWNET)
        _loopback_up()
        networks.append(_namespace_of_self("net"))
    return networks


def _new_user_namespaces(uids: tuple[int, ...]) -> list[int]:
    """Per slot, a user namespace owned by the slot's uid, mapping only that uid (see `Shared`),
    each made by a child that becomes the uid first (the owner is the maker)."""
    namespaces = []
    for uid in uids:
        ours, theirs = socket.socketpair()
        pid = os.fork()
        if pid == 0:
            try:
                ours.close()
                if os.geteuid() != uid:
                    become(uid, uid)
                _enter_user_namespace(0)
                socket.send_fds(theirs, [b"made"], [_namespace_of_self("user")])
            finally:
                os._exit(0)
        theirs.close()
        try:
            _, fds, _, _ = socket.recv_fds(ours, 16, 1)
        finally:
            ours.close()
            os.waitpid(pid, 0)
        if not fds:
            raise SandboxError(errno.EPERM, f"no user namespace could be made for uid {uid}")
        namespaces.append(fds[0])
    return namespaces


def _new_ipc() -> int:
    _unshare(CLONE_NEWIPC)
    return _namespace_of_self("ipc")


def _new_skeleton(config: SandboxConfig, binds: list[tuple[str, str]]) -> int:
    _unshare(CLONE_NEWNS)
    skeleton = _namespace_of_self("mnt")  # the namespace itself: the pivot below changes it
    _build_skeleton(config, binds)
    return skeleton


def prepare(config: SandboxConfig, outcome: Outcome, required: bool) -> Shared:
    """Once per fork server, before its first runner: the namespaces its runs share.

    As an ordinary user the fork server first enters a user namespace of its own (mapping only its
    own uid), where it has the privilege to make namespaces for its runs; root has it already. The
    shared namespaces are made in a throw-away child, which hands them back as descriptors.
    """
    uids = tuple(run_uid(config, slot) for slot in range(config.slots))
    binds = _binds(config)  # as the host shows them: a run sees only the skeleton
    if not config.enabled:
        return Shared(uids=uids)
    if config.cgroups and "cgroup" not in config.skip:
        without_namespaces = Shared(uids=uids, cgroups=_open_cgroups(config))
    else:
        without_namespaces = Shared(uids=uids)
    skip = config.skip
    if os.geteuid() != 0:
        outcome.step("namespaces", skip, lambda: _enter_user_namespace(0), required=required)
        with contextlib.suppress(SandboxError):  # the fork server's memory stays its own
            _prctl(PR_SET_DUMPABLE, 0, "not dumpable")
        if "namespaces" not in outcome.applied:
            return without_namespaces
    outcome.step("namespaces", skip, _become_first_of_pid_namespace, required=required)
    if "namespaces" not in outcome.applied:
        return without_namespaces
    home = _out_of_the_way(_namespace_of_self("pid"))
    ours, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        ours.close()
        made = Outcome()
        parts: dict[str, list[int]] = {}  # what was made: its descriptors, in this order
        try:
            if config.network != "host":
                parts["networks"] = made.step(
                    "network_isolated", skip, lambda: _new_networks(config.slots), required=False
                )
            if _FILTER is not None and "seccomp" not in skip:
                with contextlib.suppress(OSError):  # else each run makes its own (see `outer`)
                    parts["ipc"] = [_new_ipc()]
            parts["users"] = made.step(
                "locked_mounts", skip, lambda: _new_user_namespaces(uids), required=False
            )
            skeleton = made.step(
                "private_root", skip, lambda: _new_skeleton(config, binds), required=False
            )
            parts["skeleton"] = [skeleton] if skeleton is not None else []
        except BaseException as exc:
            made = Outcome(refused={**made.refused, "shared": str(exc)})
            parts = {}
        parts = {name: fds for name, fds in parts.items() if fds}
        counts = {name: len(fds) for name, fds in parts.items()}
        report = {"applied": made.applied, "refused": made.refused, "counts": counts}
        descriptors = [fd for fds in parts.values() for fd in fds]
        socket.send_fds(theirs, [json.dumps(report).encode()], descriptors)
        os._exit(0)
    theirs.close()
    try:
        message, received, _, _ = socket.recv_fds(ours, 1 << 16, 2 * config.slots + 2)
    finally:
        ours.close()
        os.waitpid(pid, 0)
    descriptors = [_out_of_the_way(fd) for fd in received]
    report = json.loads(message or b'{"applied": {}, "refused": {"shared": "no answer"}}')
    outcome.applied.update(report["applied"])
    outcome.refused.update(report["refused"])
    shares: dict[str, tuple[int, ...]] = {}
    for name, count in report.get("counts", {}).items():
        shares[name], descriptors = tuple(descriptors[:count]), descriptors[count:]
    missing = [name for name in report["refused"] if name not in skip]
    if required and missing:
        problems = "; ".join(f"{name}: {report['refused'][name]}" for name in missing)
        raise SandboxError(errno.EPERM, f"the runs' shared namespaces failed: {problems}")
    stashed = tuple((path, stash) for path, stash in binds if stash)
    return Shared(
        uids=uids,
        cgroups=without_namespaces.cgroups,
        networks=shares.get("networks", ()),
        users=shares.get("users", ()),
        skeleton=shares.get("skeleton", (-1,))[0],
        ipc=shares.get("ipc", (-1,))[0],
        mounts=_per_run_mounts(config, stashed) if "skeleton" in shares else (),
        home=home,
    )


def _become_first_of_pid_namespace() -> None:
    """Go on as the first process of a new PID namespace; the process we were only waits.

    Each run is forked into a PID namespace of its own (`fork_run`), after which the fork server
    must return to its own: the kernel lets it do that only where its privilege reaches, which an
    ordinary user's does in a namespace it made, not in the host's. The process we were stays to
    pass the service's signals on, and ends as we end (and we end if it does).
    """
    _unshare(CLONE_NEWPID)
    child = os.fork()
    if child == 0:
        _prctl(PR_SET_PDEATHSIG, 9, "parent death signal")
        return

    def pass_on(number: int, frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, number)

    for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(number, pass_on)
    while True:
        try:
            _, status = os.waitpid(child, 0)
        except InterruptedError:
            continue
        os._exit(os.waitstatus_to_exitcode(status) & 0xFF)


def fork_run(shared: Shared) -> int:
    """`os.fork()`, the child the first process of a new PID namespace: it sees only its own run's
    processes, and when it ends the kernel kills everything it started."""
    if shared.home < 0:
        return os.fork()
    _unshare(CLONE_NEWPID)
    try:
        pid = os.fork()
    except BaseException:
        _setns(shared.home, CLONE_NEWPID)
        raise
    if pid:  # the next child of ours is not born into this run's namespace
        _setns(shared.home, CLONE_NEWPID)
    return pid


def _setns(fd: int, kind: int) -> None:
    _check(_libc.setns(fd, kind), "setns")


def outer(
    config: SandboxConfig,
    shared: Shared,
    slot: int,
    scratch: str,
    outcome: Outcome,
    required: bool,
) -> None:
    """First in the run's process, as the one privileged part of its life: the run's namespaces
    and its writable mounts."""
    skip = config.skip
    if config.cgroups:
        outcome.step("cgroup", skip, lambda: _join_cgroups(config, shared, slot), required=False)
    if shared.networks:
        outcome.step(
            "network_isolated",
            skip,
            lambda: _setns(shared.networks[slot], CLONE_NEWNET),
            required=required,
        )
    if shared.skeleton >= 0:  # our root becomes the skeleton; the copy below is the run's
        outcome.step(
            "private_root", skip, lambda: _setns(shared.skeleton, CLONE_NEWNS), required=required
        )
    if shared.ipc >= 0:  # the shared one, kept empty by the filter (see `Shared`)
        outcome.step(
            "namespaces", skip, lambda: _setns(shared.ipc, CLONE_NEWIPC), required=required
        )
    for fd in shared.kept_by(slot) - {shared.user_of(slot)}:  # no way back (`inner`: the last)
        os.close(fd)
    # A cgroup namespace too (after joining the slot's cgroup): the run sees its cgroup as "/".
    # Its PID namespace it was born in (`fork_run`).
    flags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWCGROUP | (0 if shared.ipc >= 0 else CLONE_NEWIPC)
    outcome.step("namespaces", skip, lambda: _unshare(flags), required=required)
    if "namespaces" not in outcome.applied:
        return
    with contextlib.suppress(OSError):
        socket.sethostname(HOSTNAME)
    if "private_root" in outcome.applied:
        outcome.step(
            "private_root",
            skip,
            lambda: _mount_per_run(shared, slot, scratch),
            required=required,
        )


def inner(
    config: SandboxConfig,
    shared: Shared,
    slot: int,
    outcome: Outcome,
    required: bool,
    limits: list[tuple[int, int]],
) -> None:
    """Then, still before any script code: its /proc, and no privilege ever after."""
    skip = config.skip
    if "private_root" in outcome.applied:
        outcome.step("proc", skip, mount_proc, required=required)
    if os.geteuid() == 0:
        uid = shared.uids[slot]
        outcome.step("own_uid", skip, lambda: become(uid, uid), required=required)
    else:
        outcome.applied["own_uid"] = "the service's uid, alone in its namespaces"
    # A nested user namespace, as bubblewrap's: it does not own the run's mounts, so no
    # capability in it can unmount them to uncover what is beneath, nor make a read-only one
    # writable; a mount namespace made from it would hold them locked. The slot's, made once
    # (see `Shared`); where that was refused, `prepare` said so.
    user = shared.user_of(slot)
    if user >= 0:
        if "private_root" in outcome.applied:
            outcome.step("locked_mounts", skip, lambda: _enter(user), required=required)
        os.close(user)
    outcome.step("capabilities_dropped", skip, drop_capabilities, required=required)
    outcome.step(
        "no_new_privs",
        skip,
        lambda: _prctl(PR_SET_NO_NEW_PRIVS, 1, "no_new_privs"),
        required=required,
    )

    def hard_limits() -> None:
        for name, value in limits:
            resource.setrlimit(name, (value, value))

    outcome.step("hard_limits", skip, hard_limits, required=True)
    outcome.step("seccomp", skip, _install_filter, required=required)


def _enter(user: int) -> None:
    """Enter the slot's user namespace, and stay dumpable as a run that made its own was."""
    _setns(user, CLONE_NEWUSER)
    _prctl(PR_SET_DUMPABLE, 1, "dumpable")


def _install_filter() -> None:
    if _FILTER is None:
        raise SandboxError(errno.ENOSYS, f"no seccomp filter for {platform.machine()}")
    _FILTER.install()


try:  # built here, once: each run only hands it to the kernel
    _FILTER: _Filter | None = _Filter(seccomp_program())
except KeyError:  # an architecture the filter does not know: the probe reports it refused
    _FILTER = None


# -- the start-up probe ---------------------------------------------------------------------------
def probe(config: SandboxConfig) -> dict[str, Any]:
    """Build a whole sandbox in a throw-away child, step by step, and say what held.

    Runs in a fresh process (`python -m gitscripts.executor.sandbox probe`), so nothing of it
    touches the service. Each step that fails is recorded and skipped, so the answer lists every
    protection the kernel refuses, not only the first.
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        outcome = Outcome()
        try:
            shared = prepare(config, outcome, required=False)
            if fork_run(shared):
                os.close(write_fd)
                _, status = os.wait()
                os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
            outer(config, shared, 0, scratch_folder(), outcome, required=False)
            limits = [(resource.RLIMIT_NOFILE, 256)]
            inner(config, shared, 0, outcome, required=False, limits=limits)
            if "seccomp" in outcome.applied:
                fd = os.open("/dev/null", os.O_RDONLY)
                if _libc.unshare(CLONE_NEWUSER) == 0:
                    outcome.refused["seccomp"] = "the filter let unshare through"
                    del outcome.applied["seccomp"]
                os.close(fd)
            report = {"applied": outcome.applied, "refused": outcome.refused}
        except BaseException as exc:
            report = {"applied": outcome.applied, "refused": {**outcome.refused, "error": str(exc)}}
        os.write(write_fd, json.dumps(report).encode())
        os._exit(0)
    os.close(write_fd)
    chunks = []
    while chunk := os.read(read_fd, 65536):
        chunks.append(chunk)
    os.close(read_fd)
    os.waitpid(pid, 0)
    if not chunks:
        return {"applied": {}, "refused": {"error": "the probe died"}}
    return json.loads(b"".join(chunks))  # type: ignore[no-any-return]


if __name__ == "__main__" and sys.argv[1:2] == ["probe"]:
    print(json.dumps(probe(SandboxConfig.from_json(sys.argv[2]))))
