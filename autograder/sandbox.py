"""Run learner code in a bubblewrap sandbox with resource limits.

Inside the sandbox a process sees a read-only system (/usr, /etc, the Python
installation and the course's virtual environment), the grader's learner-side
package (:mod:`autograder.learner_side`: no reference, no hidden test; importing
the check library raises an ImportError that says so), the paths the caller
lists, and a private size-limited /tmp; it has no network,
its own PID namespace, and runs as an unprivileged user so that the process
limit holds. Its environment is :data:`LEARNER_ENV` only: nothing of the
grader's own (which could reach the feedback through printed output) gets in.
Limits are set with ``prlimit`` per process (CPU seconds, address space,
processes, file size) and, when the sandbox names a cgroup
(:mod:`autograder.cgroups`), for all the processes of a submission together:
the process joins it before it execs bubblewrap. The wall clock is the
caller's (kill the process group).

``python -m autograder.sandbox kernel CONFIG CONNECTION_FILE`` is the argv of
the kernelspec that nbgrader starts for each submission in the notebook's
folder: it hands the kernel a readable copy of the connection file and execs
ipykernel inside the sandbox (in its cgroup), which sees that folder read-only.
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from .course import REPO

SYSTEM_RO = ["/usr", "/etc"]
# What `import autograder.checks` finds inside the sandbox: an ImportError that says why.
CHECKS_INIT = str(REPO / "autograder" / "checks" / "__init__.py")
CHECKS_STUB = REPO / "autograder" / "learner_side" / "checks_stub.py"
SYSTEM_LINKS = {"/bin": "usr/bin", "/lib": "usr/lib", "/lib64": "usr/lib64", "/sbin": "usr/sbin"}
# The whole environment of learner processes, sandboxed or not (ipykernel needs none of JPY_*/JUPYTER_*).
LEARNER_ENV = {"PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp",
               "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "MPLBACKEND": "Agg", "MPLCONFIGDIR": "/tmp",
               "PYTHONPATH": str(REPO)}
RUNTIME_MB = 16  # size of a kernel's runtime folder: its connection file and sockets take a few kB


@dataclass(frozen=True)
class Limits:
    """Limits for learner code (``--limit NAME=VALUE`` on the command line); those
    of a whole submission need a cgroup (:mod:`autograder.cgroups`)."""

    cpu_seconds: int = 600      # CPU time of each process
    memory_mb: int = 8192       # memory of a whole submission, and address space of each process, nbgrader's too
    processes: int = 256        # processes and threads of a whole submission, and of the sandbox's user
    cpus: int = 1               # cores' worth of CPU time per second for a whole submission
    file_size_mb: int = 64      # largest file a process may write
    tmp_mb: int = 256           # size of the private /tmp
    output_mb: int = 16         # bytes read back from a verification worker
    wall_seconds: int = 900     # wall clock of one submission (nbgrader run or worker)

    @classmethod
    def parse(cls, items: list[str]) -> "Limits":
        """Limits from ``["cpu_seconds=60", ...]``; raises ValueError naming a bad item."""
        values = {}
        for item in items:
            name, _, value = item.partition("=")
            if name not in cls.__dataclass_fields__ or not value.isdigit() or int(value) <= 0:
                raise ValueError(f"--limit {item!r}: expected NAME=POSITIVE_INTEGER with NAME one of "
                                 f"{', '.join(cls.__dataclass_fields__)}")
            values[name] = int(value)
        return cls(**values)


def available() -> bool:
    """Whether bubblewrap and util-linux's prlimit and setpriv are installed."""
    return all(shutil.which(tool) for tool in ("bwrap", "prlimit", "setpriv"))


@dataclass(frozen=True)
class Sandbox:
    """How to wrap a command: ``enabled=False`` keeps the environment and the
    limits but no isolation. ``cgroup_procs`` are the ``cgroup.procs`` files
    of the cgroup that the command joins (:attr:`autograder.cgroups.Cgroup.procs`)."""

    limits: Limits = Limits()
    enabled: bool = True
    uid: int = 65534
    readonly: tuple[str, ...] = field(default_factory=tuple)
    writable: tuple[str, ...] = field(default_factory=tuple)
    cgroup_procs: tuple[str, ...] = field(default_factory=tuple)

    def with_paths(self, readonly=(), writable=()) -> "Sandbox":
        return replace(self, readonly=self.readonly + tuple(map(str, readonly)),
                       writable=self.writable + tuple(map(str, writable)))

    def wrap(self, argv: list[str], cwd: str | None = None) -> list[str]:
        """The command line that runs ``argv`` in the cgroup, under the limits,
        with :data:`LEARNER_ENV` as its whole environment (and in the sandbox)."""
        return self._join() + self._isolated(argv, cwd)

    def _join(self) -> list[str]:
        """A shell that writes its pid into the cgroup, then execs the rest (exit status 125 if it cannot)."""
        if not self.cgroup_procs:
            return []
        files = " ".join(map(shlex.quote, self.cgroup_procs))
        return ["/bin/sh", "-c", f'for f in {files}; do echo $$ > "$f" || exit 125; done; exec "$@"', "join-cgroup"]

    def _isolated(self, argv: list[str], cwd: str | None) -> list[str]:
        lim = self.limits
        limited = ["prlimit", f"--cpu={lim.cpu_seconds}", f"--as={lim.memory_mb * 2**20}",
                   f"--nproc={lim.processes}", f"--fsize={lim.file_size_mb * 2**20}", "--"]
        if not self.enabled:
            return ["env", "-i"] + [f"{name}={value}" for name, value in LEARNER_ENV.items()] + limited + argv
        cmd = ["bwrap", "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
               "--unshare-cgroup-try", "--die-with-parent", "--dev", "/dev", "--proc", "/proc",
               "--perms", "1777", "--size", str(lim.tmp_mb * 2**20), "--tmpfs", "/tmp"]
        for path in SYSTEM_RO:
            cmd += ["--ro-bind", path, path]
        for link, target in SYSTEM_LINKS.items():
            if os.path.islink(link):
                cmd += ["--symlink", target, link]
        made: set[str] = {"/", "/tmp", "/usr", "/etc", "/dev", "/proc"}
        for flag, paths in (("--ro-bind", _python_paths() + list(self.readonly)), ("--bind", self.writable)):
            for path in paths:
                cmd += _parents(path, made) + [flag, path, path]
        cmd += _parents(CHECKS_INIT, made) + ["--ro-bind", str(CHECKS_STUB), CHECKS_INIT]
        cmd.append("--clearenv")
        for name, value in LEARNER_ENV.items():
            cmd += ["--setenv", name, value]
        if cwd:
            cmd += ["--chdir", cwd]
        drop = ["setpriv", f"--reuid={self.uid}", f"--regid={self.uid}", "--clear-groups",
                "--inh-caps=-all", "--no-new-privs", "--"]
        return cmd + ["--"] + limited + drop + argv


def _python_paths() -> list[str]:
    """The Python installation, the virtual environment and the learner-side package."""
    paths = {os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix)}
    return sorted(p for p in paths if not p.startswith(("/usr", "/etc"))) + [
        str(REPO / "autograder" / "__init__.py"), str(REPO / "autograder" / "learner_side")]


def _parents(path: str, made: set[str]) -> list[str]:
    """bwrap arguments that create ``path``'s missing ancestors as traversable folders."""
    args = []
    for parent in reversed(Path(path).parents):
        p = str(parent)
        if p not in made:
            made.add(p)
            args += ["--perms", "0755", "--dir", p]
    made.add(path)
    return args


def mount_tmpfs(path: Path, size_mb: int, uid: int) -> str | None:
    """Mount an empty tmpfs of ``size_mb`` MiB on the folder ``path``, owned by
    ``uid`` with mode 0700 (a write beyond its size fails with ENOSPC).
    Returns None, or why it could not (mounting needs root)."""
    options = f"size={size_mb}m,mode=0700,uid={uid},gid={uid},nosuid,nodev,noexec"
    try:
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                                capture_output=True, text=True)
    except OSError as exc:
        return f"mount: {exc.strerror}"
    if result.returncode:
        return result.stderr.strip() or f"mount exited with status {result.returncode}"
    return None


def unmount(path: Path) -> None:
    """Detach what is mounted on ``path``, lazily: a process that still holds a
    file there cannot stop it. Raises CalledProcessError if nothing is mounted there."""
    subprocess.run(["umount", "--lazy", str(path)], check=True, capture_output=True)


def write_kernelspec(folder: Path, sandbox: Sandbox, within: Path, runtime: Path) -> None:
    """A ``python3`` kernelspec under ``folder/kernels`` (put ``folder`` on
    JUPYTER_PATH) whose kernel runs in ``sandbox``, in the folder nbgrader
    starts it in, which must lie inside ``within`` (one spec serves every
    submission). ``runtime`` (owned by the sandbox's user) receives its
    connection file and sockets (use ``KernelManager.transport=ipc`` with an
    ``ip`` and a ``connection_file`` inside it)."""
    spec = folder / "kernels" / "python3"
    spec.mkdir(parents=True, exist_ok=True)
    config = folder / "sandbox.json"
    config.write_text(json.dumps({"sandbox": asdict(sandbox), "within": str(within), "runtime": str(runtime)}))
    argv = [sys.executable, "-m", "autograder.sandbox", "kernel", str(config), "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps(
        {"argv": argv, "display_name": "Python 3 (sandboxed)", "language": "python"}))


def _launch_kernel(config_path: str, connection_file: str) -> None:
    config = json.loads(Path(config_path).read_text())
    raw = config["sandbox"]
    sandbox = Sandbox(**{name: tuple(value) if isinstance(value, list) else value for name, value in raw.items()}
                      | {"limits": Limits(**raw["limits"])})
    cwd = os.getcwd()  # nbgrader starts the kernel in the notebook's folder
    if not Path(cwd).is_relative_to(config["within"]):
        sys.exit(f"refusing to start a kernel in {cwd}: not inside {config['within']}")
    # The connection file is private to the grader's user; give the kernel a copy it can read.
    runtime = Path(config["runtime"])
    readable = runtime / ("sandbox-" + Path(connection_file).name)
    shutil.copyfile(connection_file, readable)
    os.chown(readable, sandbox.uid, sandbox.uid)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", str(readable),
            "--HistoryManager.hist_file=:memory:"]
    cmd = sandbox.with_paths(readonly=[cwd], writable=[runtime]).wrap(argv, cwd=cwd)
    os.execvp(cmd[0], cmd)


if __name__ == "__main__" and sys.argv[1:2] == ["kernel"]:
    _launch_kernel(sys.argv[2], sys.argv[3])
