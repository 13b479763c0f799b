"""The seccomp program, read instruction by instruction: a small classic-BPF interpreter runs it
over the system calls a script makes and the ones an escape needs, for each architecture it knows.

The attack tests (test_sandbox.py) show the filter installed and holding in real runs; this shows
every branch of the program, including jump offsets a real run would take only rarely.
"""

from __future__ import annotations

import errno
import socket
import struct

import pytest

from gitscripts.executor import sandbox

ALLOW = 0x7FFF0000
EPERM = 0x00050000 | errno.EPERM
ENOSYS = 0x00050000 | errno.ENOSYS
KILL = 0x80000000


def verdict(
    machine: str, name: str, *args: int, arch: str | None = None, number: int | None = None
) -> int:
    program = sandbox.seccomp_program(machine)
    instructions = [struct.unpack("HBBI", program[i : i + 8]) for i in range(0, len(program), 8)]
    if number is None:
        number = sandbox._SYSCALLS[machine].get(name, {"read": 0, "write": 1}.get(name, 0))
    if name == "x32":
        number = 0x40000000
    audit = sandbox._AUDIT_ARCH[arch or machine]
    data = struct.pack("iIQ6Q", number, audit, 0, *(list(args) + [0] * (6 - len(args))))
    pc, accumulator = 0, 0
    while True:
        code, jump_true, jump_false, k = instructions[pc]
        if code == 0x20:  # load a word of seccomp_data
            accumulator = struct.unpack_from("I", data, k)[0]
            pc += 1
        elif code in (0x15, 0x45, 0x35):  # jeq, jset, jge
            taken = {
                0x15: accumulator == k,
                0x45: bool(accumulator & k),
                0x35: accumulator >= k,
            }[code]
            pc += 1 + (jump_true if taken else jump_false)
        else:
            assert code == 0x06, f"unexpected instruction {code:#x}"
            return k


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_the_filter_allows_what_scripts_do_and_refuses_what_escapes_need(machine: str) -> None:
    fork_flags = 0x01200011  # what the C library's fork() passes to clone
    assert verdict(machine, "read") == ALLOW
    assert verdict(machine, "clone", fork_flags) == ALLOW
    assert verdict(machine, "ioctl", 0, 0x5401) == ALLOW  # TCGETS
    for family in (socket.AF_UNIX, socket.AF_INET, socket.AF_INET6, socket.AF_NETLINK):
        assert verdict(machine, "socket", family) == ALLOW
    for name in ("ptrace", "mount", "umount2", "unshare", "setns", "pivot_root", "keyctl", "bpf",
                 "perf_event_open", "userfaultfd", "process_vm_readv", "io_uring_setup",
                 "open_tree", "fsopen", "init_module", "kexec_load", "reboot",
                 # SysV IPC and POSIX message queues: the runs' IPC namespace is shared
                 "shmget", "shmat", "semget", "semop", "msgget", "msgsnd", "mq_open",
                 "mq_timedsend"):  # fmt: skip
        assert verdict(machine, name) == EPERM, name
    for flag in (sandbox.CLONE_NEWUSER, sandbox.CLONE_NEWNS, sandbox.CLONE_NEWPID):
        assert verdict(machine, "clone", fork_flags | flag) == EPERM
    assert verdict(machine, "clone3") == ENOSYS  # so the C library falls back to clone
    assert verdict(machine, "ioctl", 0, 0x5412) == EPERM  # TIOCSTI
    for family in (40, 17):  # vsock, packet
        assert verdict(machine, "socket", family) == EPERM


def test_calls_of_another_architecture_are_killed() -> None:
    assert verdict("x86_64", "read", arch="aarch64") == KILL
    assert verdict("x86_64", "x32") == EPERM


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_every_call_number_gets_the_verdict_of_the_list(machine: str) -> None:
    """The filter searches intervals of numbers as a tree: each number, listed or between two
    listed ones, must end where the list says (denied: EPERM; anything else but the calls with
    blocks of their own: allowed)."""
    numbers = sandbox._SYSCALLS[machine]
    denied = {
        n for name, n in numbers.items() if name not in ("clone", "clone3", "ioctl", "socket")
    }
    for number in range(max(numbers.values()) + 2):
        if number in (numbers["clone"], numbers["clone3"], numbers["ioctl"], numbers["socket"]):
            continue
        expected = EPERM if number in denied else ALLOW
        assert verdict(machine, "", number=number) == expected, number
    assert verdict(machine, "", number=10_000) == ALLOW  # beyond the list: not listed
