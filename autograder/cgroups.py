"""Limits per submission: a cgroup holds every process of one submission.

``prlimit`` bounds each process, so a submission that forks multiplies its
limits. A cgroup per worker slot, emptied and made anew for each submission,
bounds the submission as a whole: its memory, its processes and its CPU time
per second. Learner processes join it before they exec bubblewrap
(:attr:`autograder.sandbox.Sandbox.cgroup_procs`).

cgroup v2 serves where this process's own cgroup offers the memory, pids and
cpu controllers (``memory.max``, ``pids.max``, ``cpu.max``, ``cgroup.kill``);
otherwise cgroup v1's memory, pids and cpu hierarchies do
(``memory.limit_in_bytes`` and ``memory.memsw.limit_in_bytes``, ``pids.max``,
``cpu.cfs_quota_us``). Every cgroup made here lies below this process's own,
so it stays within whatever bounds the grader. Making them needs write access
to the cgroup filesystem (root, or a delegated subtree): :func:`create_run`
raises :class:`Unavailable`, saying why, where there is none. The files are
those of the kernel's Documentation/admin-guide/cgroup-v2.rst and
Documentation/admin-guide/cgroup-v1/.
"""
from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")  # where the cgroup filesystems are mounted
CONTROLLERS = ("memory", "pids", "cpu")  # the order of a v1 cgroup's folders
# A file that the kernel creates in every new cgroup of each v1 hierarchy.
V1_CONTROL_FILES = {"memory": "memory.limit_in_bytes", "pids": "pids.max", "cpu": "cpu.cfs_quota_us"}
CPU_PERIOD_US = 100_000
KILL_SECONDS = 10  # processes that take longer to die (stuck in the kernel) are an error


class Unavailable(RuntimeError):
    """No usable cgroup hierarchy on this machine; the message says why."""


@dataclass(frozen=True)
class Cgroup:
    """A cgroup: one folder in cgroup v2, one per controller (memory, pids, cpu) in v1."""

    version: int
    dirs: tuple[Path, ...]

    @property
    def procs(self) -> tuple[str, ...]:
        """The files a process writes its own pid to, to join this cgroup."""
        return tuple(str(d / "cgroup.procs") for d in self.dirs)

    def child(self, name: str) -> Cgroup:
        """The cgroup ``name`` below this one (made by :meth:`reset`)."""
        return Cgroup(self.version, tuple(d / name for d in self.dirs))

    def reset(self, memory_mb: int, processes: int, cpus: int) -> None:
        """Kill every process in the cgroup, then make it anew (fresh counters)
        with these limits for all its processes together: ``memory_mb`` MiB of
        memory (swap included), ``processes`` processes and threads, and
        ``cpus`` cores' worth of CPU time. Raises OSError or RuntimeError
        (from :meth:`kill`) when the cgroup cannot be made or emptied."""
        self.remove()
        for folder in self.dirs:
            folder.mkdir()
        memory, quota = memory_mb * 2**20, cpus * CPU_PERIOD_US
        if self.version == 2:
            folder, = self.dirs
            _write(folder / "memory.max", memory)
            if (folder / "memory.swap.max").exists():
                _write(folder / "memory.swap.max", 0)
            _write(folder / "pids.max", processes)
            _write(folder / "cpu.max", f"{quota} {CPU_PERIOD_US}")
            return
        memory_dir, pids_dir, cpu_dir = self.dirs
        _write(memory_dir / "memory.limit_in_bytes", memory)
        if (memory_dir / "memory.memsw.limit_in_bytes").exists():  # so that swap cannot extend it
            _write(memory_dir / "memory.memsw.limit_in_bytes", memory)
        _write(pids_dir / "pids.max", processes)
        _write(cpu_dir / "cpu.cfs_period_us", CPU_PERIOD_US)
        _write(cpu_dir / "cpu.cfs_quota_us", quota)

    def kill(self) -> None:
        """SIGKILL every process in the cgroup and wait until it is empty.

        Forking is stopped first (``pids.max`` 0, or v2's ``cgroup.kill``), so
        a fork bomb cannot outrun the signals. Raises RuntimeError when
        processes remain after KILL_SECONDS."""
        present = [d for d in self.dirs if d.is_dir()]
        if not present:
            return
        pids_dir = self.dirs[0 if self.version == 2 else 1]
        if self.version == 2 and (pids_dir / "cgroup.kill").exists():
            _write(pids_dir / "cgroup.kill", 1)
        elif pids_dir.is_dir():
            _write(pids_dir / "pids.max", 0)
        deadline = time.monotonic() + KILL_SECONDS
        while members := _members(present):
            if time.monotonic() > deadline:
                raise RuntimeError(f"processes {sorted(members)} of cgroup {present[0]} survived SIGKILL "
                                   f"for {KILL_SECONDS} s")
            _signal(members, present)
            time.sleep(0.01)

    def remove(self) -> None:
        """Kill every process in the cgroup and remove it (nothing to do if it does not exist)."""
        self.kill()
        for folder in self.dirs:
            if folder.is_dir():
                folder.rmdir()


def create_run(name: str) -> Cgroup:
    """Make the cgroup ``name`` for a grading run below this process's own
    cgroup (its slots are :meth:`Cgroup.child` cgroups), in cgroup v2 if it
    offers the memory, pids and cpu controllers, else in cgroup v1's
    hierarchies of those controllers under :data:`ROOT`. Raises Unavailable
    saying why neither can be used."""
    own = _own_cgroups()
    reasons = []
    for make in (_create_v2, _create_v1):
        try:
            return make(own, name)
        except Unavailable as exc:
            reasons.append(str(exc))
    raise Unavailable("; ".join(reasons))


def _create_v2(own: dict[str, str], name: str) -> Cgroup:
    mount = next((m for m in (ROOT, ROOT / "unified") if (m / "cgroup.controllers").is_file()), None)
    if mount is None or "" not in own:
        raise Unavailable(f"no cgroup v2 hierarchy at {ROOT}")
    parent, run = mount / own[""].lstrip("/"), mount / own[""].lstrip("/") / name
    try:
        missing = [c for c in CONTROLLERS if c not in (parent / "cgroup.controllers").read_text().split()]
        if missing:
            raise Unavailable(f"cgroup v2 offers no {', '.join(missing)} controller to {parent}")
        enabled = (parent / "cgroup.subtree_control").read_text().split()
        # Refused (EBUSY) unless the parent is the root cgroup or holds no process.
        if missing := [c for c in CONTROLLERS if c not in enabled]:
            _write(parent / "cgroup.subtree_control", " ".join("+" + c for c in missing))
        run.mkdir()
        _write(run / "cgroup.subtree_control", " ".join("+" + c for c in CONTROLLERS))
    except OSError as exc:
        if run.is_dir():
            run.rmdir()
        raise Unavailable(f"cannot make a cgroup v2 below {parent}: {exc.strerror}") from None
    return Cgroup(2, (run,))


def _create_v1(own: dict[str, str], name: str) -> Cgroup:
    made: list[Path] = []
    try:
        for controller in CONTROLLERS:
            if controller not in own:
                raise Unavailable(f"this process is in no cgroup v1 {controller} hierarchy")
            folder = ROOT / controller / own[controller].lstrip("/") / name
            try:
                folder.mkdir()
            except OSError as exc:
                raise Unavailable(f"cannot make a cgroup v1 below {folder.parent}: {exc.strerror}") from None
            made.append(folder)
            if not (folder / V1_CONTROL_FILES[controller]).is_file():
                raise Unavailable(f"{ROOT / controller} is not a cgroup v1 {controller} hierarchy")
    except Unavailable:
        for folder in made:  # a cgroup, or an empty folder where there was no cgroup filesystem
            folder.rmdir()
        raise
    return Cgroup(1, tuple(made))


def _own_cgroups() -> dict[str, str]:
    """This process's cgroup path per v1 controller, and under "" its v2 path (/proc/self/cgroup)."""
    own = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(","):
            own[controller] = path
    return own


def _members(dirs: list[Path]) -> set[int]:
    members = set()
    for folder in dirs:
        try:
            members.update(int(pid) for pid in (folder / "cgroup.procs").read_text().split())
        except FileNotFoundError:
            pass
    return members


def _signal(members: set[int], dirs: list[Path]) -> None:
    """SIGKILL the processes ``members`` that are still in the cgroup. A pidfd
    is taken before the membership is read again, so a pid that was freed and
    reused by a process elsewhere is never signalled."""
    pidfds = {}
    try:
        for pid in members:
            try:
                pidfds[pid] = os.pidfd_open(pid)
            except ProcessLookupError:
                pass
        still = _members(dirs)
        for pid, fd in pidfds.items():
            if pid in still:
                try:
                    signal.pidfd_send_signal(fd, signal.SIGKILL)
                except ProcessLookupError:
                    pass
    finally:
        for fd in pidfds.values():
            os.close(fd)


def _write(path: Path, value) -> None:
    """Write one value to a cgroup control file (one write call, as the kernel expects)."""
    with open(path, "w") as fh:
        fh.write(str(value))
