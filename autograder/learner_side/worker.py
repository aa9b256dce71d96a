"""The learner-side half of a trusted check run; runs inside the sandbox.

The sandbox holds only this package (:mod:`autograder.learner_side`): no
reference, no known-mistake table, no hidden test.

Reads one job (JSON) on stdin: the notebook's code cells to execute, in order,
and the check requests (target expression, inputs). Executes the cells in an
IPython shell, as the notebook kernel would, then answers each request with
one JSON line on the original stdout: the target's outputs (and a module's
state) encoded by :mod:`.wire`, or the error it raised. Anything the learner's
code prints goes to /dev/null. Nothing here is trusted by the grader: it only
produces plain data that the grader judges itself.

Usage: python -m autograder.learner_side.worker < job.json
"""
from __future__ import annotations

import json
import os
import sys


def main() -> None:
    job = json.loads(sys.stdin.read())
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    sys.stdout = sys.stderr = open(os.devnull, "w")

    import torch  # noqa: F401  (before the learner's code, as the notebook's imports cell does)
    from IPython.core.interactiveshell import InteractiveShell

    from autograder.learner_side import wrappers
    from autograder.learner_side.call import call_target
    from autograder.learner_side.wire import decode, encode

    shell = InteractiveShell.instance()
    for source in job["cells"]:
        shell.run_cell(source, store_history=False, silent=True)
    for request in job["requests"]:
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
            reply["error"] = f"{type(exc).__name__}: {str(exc)[:500]}"
        channel.write(json.dumps(reply) + "\n")
    channel.close()


if __name__ == "__main__":
    main()
