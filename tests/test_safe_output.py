"""Output that harms the instructor (issue 11): learner HTML, JavaScript and
SVG never act in the feedback pages or in the autograded notebook the
formgrader renders, and control characters never reach the console or the
CSV files raw.

Pages are judged with an HTML parser (BeautifulSoup), control characters with
:mod:`unicodedata`, CSV files with :mod:`csv`: oracles outside the code under
test. Every payload carries a ``PWNED_<name>`` marker; a page is inert when
no marker is inside a script, a style or an attribute, no element or URL can
run code, and every script on it is one the same template writes for an
honest notebook.
"""
import base64
import copy
import csv
import json
import re
import unicodedata
from collections import Counter

import bs4
import nbformat
import pytest
from nbconvert.exporters import HTMLExporter
from nbformat.v4 import new_markdown_cell, new_output, new_raw_cell
from nbgrader.api import Gradebook
from nbgrader.plugins import CsvExportPlugin
from nbgrader.server_extensions.formgrader import handlers

from autograder.course import EXERCISES, NOTEBOOKS, REPO, SOLUTIONS, gradebook_url, nbgrader
from autograder.feedback import CONTENT_SECURITY_POLICY, SanitizeOutputs
from autograder.grade import CellResult, Outcome
from autograder.intake import Submission
from autograder.report import SafeCsvExportPlugin, csv_cell, escape_controls, escaping, summary_line

from conftest import autograder_cli
from submissions import learner_notebook, write_submission

A = "03_scaled_attention"
RELEASE = EXERCISES / A / f"{NOTEBOOKS[A]}.ipynb"
BIDI_CONTROLS = {"LRE", "RLE", "LRO", "RLO", "PDF", "LRI", "RLI", "FSI", "PDI"}
WIDGET = "application/vnd.jupyter.widget-view+json"
SVG = '<svg xmlns="http://www.w3.org/2000/svg"><script>window.PWNED_SVG=1</script><circle r="5"/></svg>'
HTML_PAYLOAD = ('<script>window.PWNED_SCRIPT=1</script><img src=x onerror="window.PWNED_IMG=1">'
                '<a href="javascript:window.PWNED_LINK=1">click</a><b>kept</b>')
HOSTILE_MARKDOWN = [
    "Hello <script>window.PWNED_MDCELL=1</script>",
    '<img src=x onerror="window.PWNED_MDIMG=1">',
    "[link](javascript:window.PWNED_MDLINK=1)",
    "```\nquoted fence\n```\n<svg><script>window.PWNED_MDSVG=1</script></svg>",
]
URL_ATTRIBUTES = {"href", "src", "action", "formaction", "xlink:href", "data", "background", "poster", "srcdoc"}
ACTIVE_TAGS = {"iframe", "frame", "object", "embed", "svg", "math", "base", "form", "applet"}


def controls(text: str, allowed: str = "") -> list[str]:
    """The characters of ``text`` that act in a terminal or reorder text: Cc and bidi controls."""
    return [c for c in text if c not in allowed
            and (unicodedata.category(c) == "Cc" or unicodedata.bidirectional(c) in BIDI_CONTROLS)]


def active(page: str, honest: str = "") -> list[str]:
    """What on ``page`` could run code or carries a payload outside plain text,
    less what the same template writes for an ``honest`` notebook (its own
    scripts and handlers)."""
    return list((Counter(_findings(page)) - Counter(_findings(honest))).elements())


def _findings(page: str) -> list[str]:
    found = []
    for tag in bs4.BeautifulSoup(page, "html.parser").find_all(True):
        if tag.name == "script":
            found.append(f"<script src={tag.get('src')} type={tag.get('type')}> {tag.string or ''}")
        if tag.name in ACTIVE_TAGS:
            found.append(str(tag))
        if tag.name == "style" and "PWNED" in (tag.string or ""):
            found.append(f"<style> {tag.string}")
        if tag.name == "meta" and tag.get("http-equiv", "").lower() == "refresh":
            found.append(str(tag))
        for name, value in tag.attrs.items():
            value = " ".join(value) if isinstance(value, list) else value
            url = re.sub(r"[\s\x00-\x1f]", "", value).lower()
            if (name.lower().startswith("on") or "PWNED" in value
                    or name.lower() in URL_ATTRIBUTES and url.startswith(("javascript:", "vbscript:", "data:text/html",
                                                                           "data:image/svg"))):
                found.append(f"<{tag.name} {name}={value}>")
    return found


def markers(found: list[str]) -> set[str]:
    return set(re.findall(r"PWNED_\w+", " ".join(found)))


def formgrade_page(path) -> str:
    """The autograded notebook as nbgrader's formgrader renders it for the
    instructor, without nbconvert's ``sanitize_html`` (the preprocessor alone)."""
    exporter = HTMLExporter(template_name="formgrade", extra_template_basedirs=[handlers.template_path],
                            sanitize_html=False)
    resources = {"assignment_id": A, "notebook_id": NOTEBOOKS[A], "submission_id": "1", "index": 0, "total": 1,
                 "base_url": "", "student": "s", "last_name": None, "first_name": None, "notebook_path": "p"}
    return exporter.from_filename(str(path), resources=resources)[0]


# ---------------------------------------------------------------- escaping and CSV rules

@pytest.mark.parametrize("text, escaped", [
    ("\x1b[2Jcleared", "\\x1b[2Jcleared"),
    ("a\tb\r\nc\x00\x07\x7f", "a\\x09b\\x0d\\x0ac\\x00\\x07\\x7f"),
    ("\x9b31m C1 CSI \x85", "\\x9b31m C1 CSI \\x85"),
    ("evil\u202etxt.exe \u2066x\u2069 \u200f", "evil\\u202etxt.exe \\u2066x\\u2069 \\u200f"),
    ("Zoë, 中文, Ελληνικά, emoji 🙂, a\u00a0b", "Zoë, 中文, Ελληνικά, emoji 🙂, a\u00a0b"),
])
def test_escape_controls_examples(text, escaped):
    assert escape_controls(text) == escaped


def test_escape_controls_leaves_no_control_and_keeps_printable_text():
    chars = [chr(i) for i in range(0x3100)] + ["\U0001f642", "\U00010348", "\ufeff", "\ufff9"]
    for c in chars:
        out = escape_controls(c)
        assert not controls(out), repr(c)
        assert escape_controls(out) == out  # idempotent: a kept CSV row is not escaped twice
        if c.isprintable():
            assert out == c, repr(c)
        elif out != c:
            assert out.startswith("\\") and out.isascii() and out.isprintable(), repr(c)


def test_console_lines_are_escaped():
    sub = Submission("ann", A, notes=["ignored extra files: x\x1b[2J\u202e.txt"])
    outcome = Outcome(sub, [CellResult("t", 0.0, 1.0, "error")], problem="cell 3: grade_id '\x1b]0;title\x07'")
    line = summary_line(outcome)
    assert not controls(line) and "x\\x1b[2J\\u202e.txt" in line and "'\\x1b]0;title\\x07'" in line
    lines = []
    escaping(lines.append)("skipped \x1b[2Jevil\nforged line")
    assert lines == ["skipped \\x1b[2Jevil\\x0aforged line"]


@pytest.mark.parametrize("value, cell", [
    ("=HYPERLINK(\"http://x\",\"y\")", "'=HYPERLINK(\"http://x\",\"y\")"),
    ("+1", "'+1"), ("-2+3", "'-2+3"), ("@SUM(A1)", "'@SUM(A1)"), ("-", "'-"),
    ("=\x1b[2J", "'=\\x1b[2J"), ("\t=1", "\\x09=1"),
    ("-1.5", "-1.5"), (11.0, "11.0"), ("3", "3"), ("2e-05", "2e-05"), ("-1e+3", "-1e+3"),
    ("ann", "ann"), ("a=b", "a=b"), ("'=x", "'=x"),
])
def test_csv_cell_escapes_and_defuses_formulas(value, cell):
    assert csv_cell(value) == cell
    assert csv_cell(cell) == cell


# nbgrader's add_submission trips SQLAlchemy's autoflush warning (grade.py silences it too)
pytestmark = pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")


def _gradebook(url, names):
    """A gradebook with one two-cell assignment and ``names`` {student: (last, first, email)};
    the first student submitted and scored 1.5 of 3."""
    with Gradebook(url) as gb:
        gb.add_assignment(A, duedate="2026-01-31 12:00:00")
        gb.add_notebook(NOTEBOOKS[A], A)
        gb.add_grade_cell("t1", NOTEBOOKS[A], A, max_score=1, cell_type="code")
        gb.add_grade_cell("t2", NOTEBOOKS[A], A, max_score=2, cell_type="code")
        for student, (last, first, email) in names.items():
            gb.add_student(student, last_name=last, first_name=first, email=email)
        first = next(iter(names))
        gb.add_submission(A, first, timestamp="2026-01-30 10:00:00")
        gb.find_grade("t2", NOTEBOOKS[A], A, first).auto_score = 1.5
        gb.db.commit()


def test_grades_csv_is_nbgraders_export_for_ordinary_names(tmp_path):
    url = f"sqlite:///{tmp_path / 'gradebook.db'}"
    _gradebook(url, {"ann": ("Lee", "Ann", "ann@example.org"), "bo": (None, None, None)})
    with Gradebook(url) as gb:
        CsvExportPlugin(to=str(tmp_path / "nbgrader.csv")).export(gb)
        SafeCsvExportPlugin(to=str(tmp_path / "safe.csv")).export(gb)
        SafeCsvExportPlugin(to=str(tmp_path / "one.csv"), student=["bo"], assignment=[A]).export(gb)
    expected = (tmp_path / "nbgrader.csv").read_bytes()
    assert (tmp_path / "safe.csv").read_bytes() == expected
    assert b"1.5" in expected and b"2026-01-30 10:00:00" in expected
    lines = expected.decode().splitlines()
    assert (tmp_path / "one.csv").read_text().splitlines() == [lines[0], next(x for x in lines if ",bo," in x)]


def test_grades_csv_quotes_escapes_and_defuses_names_also_through_nbgrader_export(tmp_path):
    url = f"sqlite:///{tmp_path / 'gradebook.db'}"
    _gradebook(url, {"ann": ("Smith, \x1b[2J\u202eJr", '=HYPERLINK("http://evil","x")', "-2+3@evil")})
    with Gradebook(url) as gb:
        SafeCsvExportPlugin(to=str(tmp_path / "safe.csv")).export(gb)
    # plain `nbgrader export` from the repository root uses the same plugin (nbgrader_config.py)
    result = nbgrader("export", f"--CourseDirectory.root={REPO}", f"--CourseDirectory.db_url={url}",
                      f"--to={tmp_path / 'export.csv'}")
    assert result.returncode == 0, result.stdout
    for name in ("safe.csv", "export.csv"):
        text = (tmp_path / name).read_text(encoding="utf-8")
        assert not controls(text, allowed="\n"), name
        rows = list(csv.DictReader(text.splitlines()))
        assert len(rows) == 1 and None not in rows[0], rows  # no value spilled into an extra column
        assert rows[0]["last_name"] == "Smith, \\x1b[2J\\u202eJr"
        assert rows[0]["first_name"] == "'=HYPERLINK(\"http://evil\",\"x\")"
        assert rows[0]["email"] == "'-2+3@evil"
        assert (rows[0]["raw_score"], rows[0]["score"], rows[0]["max_score"]) == ("1.5", "1.5", "3.0")


# ---------------------------------------------------------------- SanitizeOutputs on a real notebook

def _hostile(nb):
    """``nb`` with hostile Markdown and raw cells, outputs and widget state added
    (and a benign Markdown output); returns the indices of the added Markdown cells."""
    code = next(c for c in nb.cells if c.cell_type == "code")
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()
    code.outputs = [
        new_output("display_data", data={"text/html": HTML_PAYLOAD, "text/plain": "<HTML>"}),
        new_output("display_data", data={"application/javascript": "window.PWNED_JS=1", "text/plain": "<JS>"}),
        new_output("display_data", data={"image/svg+xml": SVG}),
        new_output("display_data", data={"text/markdown": "[md](javascript:window.PWNED_MD=1)", "text/plain": "md"}),
        new_output("display_data", data={"text/markdown": "*fine*", "text/plain": "fine"}),
        new_output("display_data", data={WIDGET: {"model_id": "PWNED_WIDGET", "version_major": 2,
                                                  "version_minor": 0}, "text/plain": "widget"}),
        nbformat.from_dict({"output_type": "execute_result", "execution_count": 1, "metadata": {},
                            "data": {"text/html": {"not": "text"}, "text/plain": "3"}}),  # new_output refuses it
        new_output("display_data", data={"image/png": png}, metadata={"filenames": {"image/png": "/api/PWNED_FILE"}}),
        new_output("stream", name="stdout", text="\x1b[2J<script>window.PWNED_STREAM=1</script>"),
    ]
    at = len(nb.cells)
    nb.cells += [new_markdown_cell(src) for src in HOSTILE_MARKDOWN]
    svg = base64.b64encode(SVG.replace("SVG", "ATTACHMENT").encode()).decode()
    nb.cells.append(new_markdown_cell("![pic](attachment:evil.svg)", attachments={"evil.svg": {"image/svg+xml": svg}}))
    nb.cells.append(new_raw_cell("<script>window.PWNED_RAW=1</script>", metadata={"raw_mimetype": "text/html"}))
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {"PWNED_STATE": {}}}}
    return range(at, at + len(HOSTILE_MARKDOWN) + 1)


def test_sanitize_outputs_makes_a_real_notebook_inert_and_keeps_honest_content(tmp_path):
    release = nbformat.read(RELEASE, as_version=4)
    nb = copy.deepcopy(release)
    added = _hostile(nb)
    (tmp_path / "hostile.ipynb").write_text(json.dumps(nb))  # nbformat.write refuses the non-text value
    nb, _ = SanitizeOutputs().preprocess(nb, {})
    nbformat.write(nb, tmp_path / "sanitized.ipynb")

    # every cell of the release (text, math, code spans, headings) is kept as it was
    assert [c.source for c in nb.cells[:len(release.cells)]] == [c.source for c in release.cells]
    # hostile Markdown is shown as its source, in a fence longer than any it holds
    for i, original in zip(added, [*HOSTILE_MARKDOWN, "![pic](attachment:evil.svg)"]):
        fence = "````" if "```" in original else "```"
        assert nb.cells[i].source == f"{fence}\n{original}\n{fence}" and "attachments" not in nb.cells[i]
    outputs = next(c for c in nb.cells if c.cell_type == "code").outputs
    assert [sorted(o.get("data", {})) for o in outputs] == [
        ["text/html", "text/plain"], ["text/plain"], ["text/plain"], ["text/plain"], ["text/markdown", "text/plain"],
        ["text/plain"], ["text/plain"], ["image/png"], []]
    assert outputs[2].data["text/plain"] == "[removed by the grader: image/svg+xml]"
    assert "filenames" not in outputs[7].metadata
    assert "<b>kept</b>" in outputs[0].data["text/html"] and not active(outputs[0].data["text/html"])
    assert "widgets" not in nb.metadata

    honest = formgrade_page(RELEASE)
    before = active(formgrade_page(tmp_path / "hostile.ipynb"), honest)
    assert markers(before) == {"PWNED_SCRIPT", "PWNED_IMG", "PWNED_LINK", "PWNED_JS", "PWNED_MD", "PWNED_MDCELL",
                               "PWNED_MDIMG", "PWNED_MDLINK", "PWNED_MDSVG", "PWNED_FILE"}, before
    # the oracle sees every attack that works on this page (nbconvert cleans raw cells itself, and
    # nbgrader's template renders no widget: their removal is checked on the notebook above)
    page = formgrade_page(tmp_path / "sanitized.ipynb")
    assert active(page, honest) == []
    text = bs4.BeautifulSoup(page, "html.parser").get_text()
    assert "<script>window.PWNED_MDCELL=1</script>" in text  # shown to the instructor, inert


def test_every_markdown_cell_of_the_course_is_kept():
    cells = [c for path in sorted([*EXERCISES.glob("*/*.ipynb"), *SOLUTIONS.glob("*/*.ipynb")])
             for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown"]
    assert len(cells) > 100
    sanitize = SanitizeOutputs()
    assert [c.source for c in cells if not sanitize.inert_markdown(c.source, c.get("attachments", {}))] == []


# ---------------------------------------------------------------- a real grading batch

def _class(root):
    """mallory: hostile outputs from her solution and the test cells, and hostile
    Markdown; ann: the solution with an extra file named with control characters;
    bob: a cell whose grade_id is an ANSI escape; a folder whose name is one."""
    test_output = ("import IPython.display as shown; "
                   "shown.display(shown.HTML('<script>window.PWNED_TEST=1</script>'))\n    d_k = keys.shape[-1]")
    nb = learner_notebook(A, {"scaled_dot_product_attention": [("d_k = keys.shape[-1]", test_output)]})
    payload = ("from IPython.display import HTML, Javascript, SVG, Markdown, display\n"
               f"display(HTML({HTML_PAYLOAD!r}))\ndisplay(Javascript('window.PWNED_JS=1'))\n"
               f"display(SVG({SVG!r}))\ndisplay(Markdown('[md](javascript:window.PWNED_MD=1)'))\n"
               f"display({{{WIDGET!r}: {{'model_id': 'PWNED_WIDGET', 'version_major': 2, 'version_minor': 0}},"
               " 'text/plain': 'widget'}, raw=True)\n"
               "print('\\x1b[2Jcleared')\n")
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "scaled_dot_product_attention":
            cell.source += "\n\n" + payload
    for i, src in enumerate(HOSTILE_MARKDOWN):
        nb.cells.insert(6 + i, new_markdown_cell(src))
    write_submission(root, "mallory", A, nb)
    write_submission(root, "ann", A, learner_notebook(A))
    (root / "ann" / A / "notes\x1b[2J\u202eexe.txt").write_text("x")
    bob = learner_notebook(A)
    bob.cells.append(new_markdown_cell("mine", metadata={"nbgrader": {
        "grade_id": "\x1b[31mred\u202e", "locked": True, "solution": False, "grade": False, "schema_version": 3}}))
    write_submission(root, "bob", A, bob)
    (root / "\x1b]0;pwned\x07x").mkdir()


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root, out = tmp_path_factory.mktemp("class"), tmp_path_factory.mktemp("out")
    _class(root)
    with Gradebook(gradebook_url(out)) as gb:  # a roster whose names came from the learners
        gb.add_student("ann", last_name="Smith, \x1b[2J\u202eJr", first_name='=HYPERLINK("http://evil","x")',
                       email="-2+3@evil")
    result = autograder_cli("grade", str(root), "--out", str(out), "--assignment", A)
    return out, result.stdout + result.stderr


def test_feedback_pages_are_inert_and_start_with_the_csp(graded):
    out, _ = graded
    pages = {s: (out / "feedback" / s / A / f"{NOTEBOOKS[A]}.html").read_text() for s in ("mallory", "ann", "bob")}
    found = active(pages["mallory"], pages["ann"])
    assert found == [], found
    text = bs4.BeautifulSoup(pages["mallory"], "html.parser").get_text()
    assert "window.PWNED_MDCELL=1" in text and "PWNED_TEST" in text  # shown as text, from test cells too
    for student, page in pages.items():  # bob's is our own page: nbgrader could not run his notebook
        head = bs4.BeautifulSoup(page, "html.parser").head
        first = next(n for n in head.children if not (isinstance(n, bs4.NavigableString) and not n.strip()))
        assert isinstance(first, bs4.Tag) and first.name == "meta", (student, first)
        assert first["http-equiv"] == "Content-Security-Policy", student
        policy = dict(d.strip().split(None, 1) for d in first["content"].split(";"))
        assert policy["default-src"] == "'none'" and "script-src" not in policy, policy
        assert first["content"] == CONTENT_SECURITY_POLICY


def test_autograded_notebook_is_inert_in_the_formgrader(graded):
    out, _ = graded
    mallory = out / "autograded" / "mallory" / A / f"{NOTEBOOKS[A]}.ipynb"
    kinds = {k for c in nbformat.read(mallory, as_version=4).cells for o in c.get("outputs", [])
             for k in o.get("data", {})}
    assert kinds <= {"text/plain", "text/html", "text/markdown", "image/png"}, kinds
    honest = formgrade_page(out / "autograded" / "ann" / A / f"{NOTEBOOKS[A]}.ipynb")
    found = active(formgrade_page(mallory), honest)
    assert found == [], found


def test_console_and_csv_files_carry_no_control_character(graded):
    out, console = graded
    assert not controls(console, allowed="\n"), repr(console)
    for visible in ("\\x1b]0;pwned\\x07x", "notes\\x1b[2J\\u202eexe.txt", "\\x1b[31mred\\u202e"):
        assert visible in console, visible  # escaped, not dropped
    for name in ("grades.csv", "grades_detail.csv"):
        text = (out / name).read_text(encoding="utf-8")
        assert not controls(text, allowed="\n"), name
        for row in csv.reader(text.splitlines()):
            for cell in row:
                assert not cell.startswith(("=", "+", "-", "@")) or re.fullmatch(r"-?[\d.]+", cell), (name, cell)
    with open(out / "grades.csv", newline="") as fh:
        rows = {r["student_id"]: r for r in csv.DictReader(fh)}
    assert set(rows) == {"ann", "bob", "mallory"} and all(None not in r for r in rows.values())
    assert (rows["ann"]["last_name"], rows["ann"]["first_name"], rows["ann"]["email"]) == (
        "Smith, \\x1b[2J\\u202eJr", "'=HYPERLINK(\"http://evil\",\"x\")", "'-2+3@evil")
    assert rows["ann"]["score"] == rows["ann"]["max_score"] == "11.0"
