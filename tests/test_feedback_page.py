"""Feedback pages as a learner reads them: offline, in Chromium, on a phone and
a desktop. Math is typeset (without any script), long verdicts wrap, the summary
names every test by its grade_id, and every verdict that is not a pass says why."""
import re

import nbformat
import pytest
from nbgrader import utils
from playwright.sync_api import sync_playwright

from autograder.course import EXERCISES, NOTEBOOKS
from gradebatch import grade_class
from site_checks import CHROMIUM, CHROMIUM_ARGS
from submissions import learner_notebook, write_submission

A = "05_multi_head"
HOSTILE_TEX = (r"Inline $\href{javascript:alert(1)}{x}$, a style $\style{background:url(http://evil.example/)}{y}$,"
               r" a class $\class{x}{z}$ and a fraction $$\frac{a}{b}$$")
GRADE_IDS = [c.metadata.nbgrader["grade_id"]
             for c in nbformat.read(EXERCISES / A / f"{NOTEBOOKS[A]}.ipynb", as_version=4).cells
             if utils.is_grade(c) and not utils.is_solution(c)]


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    root, out = tmp_path_factory.mktemp("class"), tmp_path_factory.mktemp("out")
    nb = learner_notebook(A)
    nb.cells.append(nbformat.v4.new_markdown_cell(HOSTILE_TEX))
    write_submission(root, "x_tex", A, nb)
    grade_class(root, out, [A], {})
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield {student: out / "feedback" / student / A / f"{NOTEBOOKS[A]}.html"
               for student in ("z_solution", "y_blank_release", "x_tex")}, browser
        browser.close()


def read(browser, path, width):
    """What the page shows at ``width`` px with the network off, and what went wrong loading it."""
    context = browser.new_context(viewport={"width": width, "height": 900}, offline=True)
    page = context.new_page()
    problems = []
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("console", lambda m: m.type == "error" and problems.append(f"console error: {m.text}"))
    page.on("request", lambda r: r.url != path.as_uri() and not r.url.startswith("data:")
            and problems.append(f"request: {r.url}"))
    page.goto(path.as_uri(), wait_until="load")
    shown = page.evaluate("""() => ({
        overflow: document.documentElement.scrollWidth - window.innerWidth,
        clipped: Array.from(document.querySelectorAll('pre')).filter(e => e.scrollWidth > e.clientWidth + 1)
            .map(e => e.textContent.slice(0, 80)),
        formulas: Array.from(document.querySelectorAll('mjx-container svg')).map(s => s.getBoundingClientRect().width),
        text: document.body.innerText,
        summary: Array.from(document.querySelectorAll('#toc li')).map(li => li.innerText),
        links: Array.from(document.querySelectorAll('[href], [xlink\\\\:href]')).map(e => e.getAttribute('href') || ''),
        styles: Array.from(document.querySelectorAll('[style]')).map(e => e.getAttribute('style')),
    })""")
    context.close()
    return shown, problems


@pytest.mark.parametrize("width", [390, 1280])
@pytest.mark.parametrize("student", ["z_solution", "y_blank_release"])
def test_feedback_reads_well_offline(pages, student, width):
    paths, browser = pages
    shown, problems = read(browser, paths[student], width)
    assert problems == []
    assert shown["overflow"] <= 0 and shown["clipped"] == []
    assert shown["formulas"] and all(w > 0 for w in shown["formulas"])  # the notebook's math, typeset
    assert not re.search(r"\$\$|\$h\$|\\frac|\\mathrm", shown["text"])
    assert [item.split()[0] for item in shown["summary"] if " test" in item] == GRADE_IDS
    assert not any("Test cell" in item for item in shown["summary"])


def test_every_verdict_that_is_not_a_pass_says_why(pages):
    paths, browser = pages
    shown, _ = read(browser, paths["y_blank_release"], 1280)
    verdicts = re.findall(r"^Grader: (\w+), [\d.]+ / [\d.]+(.*)$", shown["text"], re.M)
    assert len(verdicts) == len(GRADE_IDS)
    assert all(status != "passed" and reason.startswith(": ") and len(reason) > 10 for status, reason in verdicts)
    assert all(re.search(r"test: (error|failed)", item) for item in shown["summary"] if " test" in item)
    solved, _ = read(browser, paths["z_solution"], 1280)
    assert all(re.search(r"test: passed", item) for item in solved["summary"] if " test" in item)


def test_math_from_a_learner_is_drawn_without_links_or_styles(pages):
    paths, browser = pages
    shown, problems = read(browser, paths["x_tex"], 390)
    assert problems == []
    assert not [link for link in shown["links"] if "javascript" in link or "evil" in link]
    assert not [style for style in shown["styles"] if "url(" in style]
    assert r"\frac" not in shown["text"]  # typeset; TeX that MathJax rejects stays as inert text
