"""A long-lived ``nbgrader autograde`` that grades one submission per request.

Starting Python and importing nbgrader costs about 2 s, more than executing a
short notebook; one process per worker slot pays it once per batch instead of
once per submission. Each submission is still graded on its own (nbgrader's
``Autograde`` converter for one student, as its formgrader API does), and the
grader kills the process on a timeout and starts another, so one submission
cannot stop the others. The learner's kernel executes no hidden test: they
are removed from the test cells before execution (:class:`autograder.preprocessors.StripHiddenTests`),
and the trusted verdicts (:mod:`autograder.verify`) grade those cells.

Protocol: a JSON line ``{"assignment": ..., "student": ..., "strip": [grade_id,
...]}`` on stdin (the test cells whose hidden tests the kernel must not run),
a JSON line ``{"success": bool, "log": str}`` back on stdout.
"""
from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

from .course import REPO, nbgrader_env


class NbgraderServer:
    """Client side: starts ``python -m autograder.nbgrader_server ARGS`` on first use.

    ``args`` are ``nbgrader autograde`` options (workspace, kernel transport),
    ``env`` is added to :func:`autograder.course.nbgrader_env`, and nbgrader's
    own log goes to ``log_path``. nbgrader keeps a kernel's outputs in memory,
    so its address space is limited to ``memory_mb``: an endless stream of
    output ends the submission's run instead of exhausting the machine.
    """

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path, memory_mb: int):
        self.args, self.env, self.log_path, self.memory_mb = args, env, log_path, memory_mb
        self.proc: subprocess.Popen | None = None
        self.replies: queue.Queue[str | None] = queue.Queue()

    def autograde(self, assignment: str, student: str, timeout: float,
                  strip: list[str] = ()) -> tuple[bool, str, bool]:
        """Autograde one submission, without the hidden tests of the test cells
        ``strip``: ``(success, nbgrader's log, died)``, where
        ``died`` says that the process stopped without answering (the log is
        then what it wrote to stderr during this request).

        Raises ``subprocess.TimeoutExpired`` after ``timeout`` seconds, having
        killed the process (and with it the sandboxed kernel); its ``output``
        is the log written during this request.
        """
        start = self.log_path.stat().st_size if self.log_path.exists() else 0  # before a new process writes
        if self.proc is None:
            self.start()
        try:
            self.proc.stdin.write(json.dumps({"assignment": assignment, "student": student,
                                              "strip": list(strip)}) + "\n")
            self.proc.stdin.flush()
            line = self.replies.get(timeout=timeout)
        except queue.Empty:
            self.close()
            raise subprocess.TimeoutExpired(f"autograde {assignment} --student={student}", timeout,
                                            output=_since(self.log_path, start)) from None
        except BrokenPipeError:
            line = None
        if line is None:  # the process died; the next request starts another
            self.close()
            return False, "nbgrader stopped unexpectedly:\n" + _since(self.log_path, start), True
        reply = json.loads(line)
        return reply["success"], reply["log"], False

    def close(self) -> None:
        """Kill the process group (nbgrader and its kernel); safe to call twice."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except BrokenPipeError:
                pass
        self.proc = None

    def start(self) -> None:
        """Start the process (done by the first request)."""
        self.replies = queue.Queue()
        with open(self.log_path, "a") as log:
            cmd = ["prlimit", f"--as={self.memory_mb * 2**20}", "--",
                   sys.executable, "-m", "autograder.nbgrader_server", *self.args]
            self.proc = subprocess.Popen(cmd,
                                         cwd=REPO, env={**nbgrader_env(), **self.env}, stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True)
        threading.Thread(target=_forward, args=(self.proc.stdout, self.replies), daemon=True).start()


def _forward(stream, replies: queue.Queue) -> None:
    for line in stream:
        replies.put(line)
    replies.put(None)


def _since(path: Path, offset: int, chars: int = 2**20) -> str:
    """What was written to ``path`` after ``offset`` (at most its last ``chars``)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            return fh.read().decode(errors="replace")[-chars:]
    except OSError:
        return ""


def serve(argv: list[str]) -> None:
    """Server side: answer autograde requests from stdin until it closes."""
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # stray prints go to the log, never into the replies
    from nbgrader.apps.autogradeapp import AutogradeApp
    from nbgrader.converters import Autograde
    from nbgrader.utils import capture_log

    from nbgrader.preprocessors import OverwriteCells

    from .preprocessors import OverwriteCellsInOrder, StripHiddenTests

    app = AutogradeApp()
    app.initialize(argv)  # nbgrader_config.py from the working folder, then the options
    for line in sys.stdin:
        request = json.loads(line)
        app.coursedir.assignment_id = request["assignment"]
        app.coursedir.student_id = request["student"]
        app.config.StripHiddenTests.grade_ids = request["strip"]  # read by the converter made next
        converter = Autograde(coursedir=app.coursedir, parent=app)
        # Stripped as soon as OverwriteCells puts the test cells back: the notebook nbgrader writes
        # between its two passes lies in the kernel's folder, and stays there if the run is killed.
        sanitize = []
        for p in converter.sanitize_preprocessors:
            sanitize += [OverwriteCellsInOrder, StripHiddenTests] if p is OverwriteCells else [p]
        converter.sanitize_preprocessors = sanitize
        result = capture_log(converter)
        log = result.get("log", "") + result.get("error", "")
        replies.write(json.dumps({"success": result["success"], "log": log}) + "\n")
        replies.flush()


if __name__ == "__main__":
    serve(sys.argv[1:])
