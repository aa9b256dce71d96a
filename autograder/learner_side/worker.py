"""The learner-side half of a trusted check run; runs inside the sandbox.

The sandbox holds only this package (:mod:`autograder.learner_side`): no
reference, no known-mistake table, no hidden test.

Speaks JSON lines on stdin and stdout: the first line holds the notebook's
code cells to execute, in order, in an IPython shell, as the notebook kernel
would; each further line is one check request (target expression, inputs),
answered with one line: the target's outputs (and a module's state and
gradients) encoded by :mod:`.wire`, or the error it raised. The grader sends
the next request only after it has read this one's reply (see
:func:`autograder.replies.exchange`). The learner's code gets /dev/null as
stdin, stdout and stderr. Nothing here is trusted by the grader: it only
produces plain data that the grader checks and judges itself.

Usage: python -m autograder.learner_side.worker
"""
from __future__ import annotations

import json
import os
import sys


def main() -> None:
    # Requests and replies travel on duplicates of fds 0 and 1, so that input() or
    # print() in the learner's code cannot take a request or write a stray line.
    requests = os.fdopen(os.dup(0), "rb")
    channel = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    sys.stdin = open(os.devnull)
    sys.stdout = sys.stderr = open(os.devnull, "w")
    cells = json.loads(requests.readline())["cells"]

    import torch  # noqa: F401  (before the learner's code, as the notebook's imports cell does)
    from IPython.core.interactiveshell import InteractiveShell

    from autograder.learner_side import wrappers
    from autograder.learner_side.call import call_target
    from autograder.learner_side.wire import decode, encode

    shell = InteractiveShell.instance()
    for source in cells:
        shell.run_cell(source, store_history=False, silent=True)
    for line in requests:
        request = json.loads(line)
        reply = {"id": request["id"]}
        try:
            scope = dict(shell.user_ns)
            scope.update(dict.fromkeys(request.get("modules", ()), wrappers))  # e.g. checks.on_tiny_model(freeze_)
            target = eval(request["target"], scope)  # noqa: S307 (the expression comes from the grader)
            outputs, state, *grads = call_target(request["kind"], target, decode(request["inputs"]),
                                                 request.get("init"), request.get("init_seed", 0),
                                                 request.get("mode", "eval"), request.get("state_seed"),
                                                 *request.get("positional", ((), ())),
                                                 grad_seed=request.get("grad_seed"),
                                                 grad_inputs=request.get("grad_inputs"))
            reply["outputs"], reply["state"] = encode(list(outputs)), encode(state)
            if grads:
                reply["grads"] = encode(grads[0])
        except BaseException as exc:  # the learner's code may raise anything, SystemExit included
            reply["error"] = f"{type(exc).__name__}: {str(exc)[:500]}"[:1000]
        data = (json.dumps(reply) + "\n").encode()
        while data:
            data = data[os.write(channel, data):]
    os._exit(0)  # at the end of the requests; threads the learner's code started must not keep us alive


if __name__ == "__main__":
    main()
