"""nbgrader/nbconvert pieces that keep what a learner wrote from acting in the
pages the instructor and the learner open.

* :class:`CondenseTestTracebacks`: feedback never shows hidden test code.
  nbgrader's own ``ClearHiddenTests`` removes the hidden block from a test
  cell's source, but a failing test's traceback still quotes the lines that
  raised, hidden ones included; only ``ExceptionName: message`` is kept for
  errors in graded test cells (the check library writes its messages to be
  read on their own).
* :class:`SanitizeOutputs`: run after execution (``nbgrader autograde``) and
  before rendering (``generate_feedback``), it makes a notebook inert: active
  outputs (JavaScript, SVG, widgets, HTML) are removed or cleaned, control
  characters in text outputs escaped (:func:`autograder.printable.terminal_text`),
  and a Markdown cell whose rendering is not inert is shown as its source text.
  nbgrader's formgrader renders the autograded notebook with its own
  JavaScript on the page and Markdown cells outside nbconvert's
  ``sanitize_html``, so this preprocessor is what protects the instructor
  there.
* :class:`FeedbackExporter`: nbconvert's HTML exporter whose pages start with a
  Content-Security-Policy that forbids every script (:data:`CSP_META`).
"""
import re

from bs4 import BeautifulSoup
from nbconvert.exporters import HTMLExporter
from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath
from nbconvert.preprocessors import Preprocessor
from nbconvert.preprocessors.sanitize import SanitizeHTML
from nbgrader import utils
from traitlets import Any, Bool, List, Set, Unicode

from .printable import terminal_text
from .tex_svg import typeset

# No script, frame, font or network request of any kind; inline styles (nbgrader's
# template inlines its CSS) and embedded images only.
CONTENT_SECURITY_POLICY = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
                           "form-action 'none'")
CSP_META = f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">'

# What nbconvert's Markdown renderer writes for ordinary Markdown (every Markdown
# cell of this course renders to these only), plus tables; bleach escapes the rest.
MARKUP_TAGS = ["a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "div", "dl", "dt", "em", "h1", "h2", "h3",
               "h4", "h5", "h6", "hr", "i", "img", "li", "ol", "p", "pre", "span", "strong", "sub", "sup", "table",
               "tbody", "td", "th", "thead", "tr", "ul"]
MARKUP_ATTRIBUTES = {"*": ["class", "id", "title"], "a": ["href"], "img": ["src", "alt", "width", "height"],
                     "ol": ["start"]}


class CondenseTestTracebacks(Preprocessor):
    """Replace each error traceback of a grade (test) cell by its last line."""

    enabled = Bool(True)  # nbconvert's preprocessors are off by default

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code" and utils.is_grade(cell) and not utils.is_solution(cell):
            for output in cell.get("outputs", []):
                if output.output_type == "error":
                    output.traceback = [f"{output.ename}: {output.evalue}"]
        return cell, resources


class SanitizeOutputs(SanitizeHTML):
    """nbconvert's ``SanitizeHTML`` (bleach) for every cell, made complete for
    the pages nbgrader renders without ``sanitize_html``:

    * outputs keep plain text, PNG, JPEG and LaTeX; ``text/html`` is cleaned
      with bleach (:data:`MARKUP_TAGS`, :data:`MARKUP_ATTRIBUTES`, links to
      http, https and mailto only); ``text/markdown`` is kept only when its
      rendering is inert; every other type (``application/javascript``,
      ``image/svg+xml``, widget views, ...) and any value that is not text is
      removed, and an output left without ``text/plain`` says what was removed;
    * a Markdown cell is kept when bleach leaves its rendering (nbconvert's
      ``markdown2html``, as the templates call it) unchanged; otherwise its
      source is shown as a code block, without its attachments. Rendering the
      Markdown catches what cleaning its source cannot, such as
      ``[x](javascript:...)``;
    * raw cells are cleaned (``SanitizeHTML``) and the notebook's widget state,
      which nbconvert embeds as script, is dropped.
    """

    enabled = Bool(True)
    tags = List(Unicode(), default_value=MARKUP_TAGS).tag(config=True)
    attributes = Any(default_value=MARKUP_ATTRIBUTES).tag(config=True)
    sanitized_output_types = Set(default_value={"text/html"}).tag(config=True)

    def preprocess(self, nb, resources):
        nb.metadata.pop("widgets", None)
        return super().preprocess(nb, resources)

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "markdown":
            if not self.inert_markdown(cell.source, cell.get("attachments", {})):
                fence = "`" * max(3, 1 + max(map(len, re.findall("`+", cell.source)), default=0))
                cell.source = f"{fence}\n{cell.source}\n{fence}"
                cell.pop("attachments", None)
            return cell, resources
        if cell.cell_type in ("code", "raw"):
            return super().preprocess_cell(cell, resources, index)
        return cell, resources

    def sanitize_code_outputs(self, outputs):
        for output in outputs:
            if output.output_type == "stream":
                output.text = terminal_text(output.text)
            if output.output_type == "error":  # HTML-escaped where shown, but an escape sequence would act
                output.ename, output.evalue = terminal_text(output.ename), terminal_text(output.evalue)
                output.traceback = [terminal_text(line) for line in output.traceback]
            if output.output_type not in ("display_data", "execute_result"):
                continue
            data, removed = output.get("data", {}), []
            if isinstance(data.get("text/plain"), str):
                data["text/plain"] = terminal_text(data["text/plain"])
            for key, value in list(data.items()):
                text = isinstance(value, str)  # anything else is not renderable, and bleach would fail on it
                if key in self.safe_output_keys:
                    continue
                if text and key in self.sanitized_output_types:
                    data[key] = self.sanitize_html_tags(value)
                elif not (text and key == "text/markdown" and self.inert_markdown(value)):
                    removed.append(key)
                    del data[key]
            if removed and "text/plain" not in data:
                data["text/plain"] = f"[removed by the grader: {', '.join(removed)}]"
            # nbconvert turns these file names into <img src>: a request from the viewer's page
            output.get("metadata", {}).pop("filenames", None)
        return outputs

    def inert_markdown(self, source: str, attachments: dict | None = None) -> bool:
        """Whether bleach leaves the HTML that nbconvert renders from ``source`` unchanged."""
        try:
            rendered = MarkdownWithMath(renderer=IPythonRenderer(escape=False, attachments=attachments)).render(source)
        except Exception:  # a missing attachment, a renderer error: the templates would fail too
            return False
        return self.sanitize_html_tags(rendered) == rendered


# Long lines (the grader's verdict, tracebacks, code) wrap instead of running off the page.
READABLE_CSS = """
div.output_area pre, div.input_area pre, .highlight pre { white-space: pre-wrap; overflow-wrap: break-word; }
div#toc code { font-size: 100%; }
.text_cell_render code { overflow-wrap: anywhere; }
mjx-container[display="true"] { display: block; text-align: center; margin: 0.5em 0; }
mjx-container svg { max-width: 100%; height: auto; }
"""
KINDS = {"Test cell": "test", "Coding free-response": "answer", "Written response": "written answer", "Task": "task"}


def readable(page: BeautifulSoup, nb) -> None:
    """Make a feedback page read well on any screen and offline: math typeset
    as SVG (:mod:`autograder.tex_svg`), long lines wrapped, and nbgrader's
    summary naming each cell by its ``grade_id``, with the grader's verdict
    (the ``Grader:`` line :func:`autograder.report.annotate` adds)."""
    typeset(page, ".text_cell_render")
    head = page.head
    if head is None:  # FeedbackExporter refuses such a page
        return
    head.append(page.new_tag("meta", attrs={"name": "viewport", "content": "width=device-width, initial-scale=1"}))
    for inlined in page.find_all("style"):  # bootstrap's icon font: not shipped, and the policy blocks fonts
        if inlined.string and "@font-face" in inlined.string:
            inlined.string = re.sub(r"@font-face\s*\{[^}]*\}", "", inlined.string)
    style = page.new_tag("style")
    style.string = READABLE_CSS
    head.append(style)
    verdicts = {}
    for cell in nb.cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        for output in cell.get("outputs", []):
            text = output.get("text", "") if output.get("output_type") == "stream" else ""
            if grade_id and text.startswith("Grader: "):
                verdicts[grade_id] = text.split(",", 1)[0].removeprefix("Grader: ")
    for link in page.select("div#toc li > a[href^='#']"):
        grade_id, kind = link["href"][1:], KINDS.get(link.get_text(strip=True))
        if kind is None or grade_id.startswith("comment-"):
            continue
        link.clear()
        code = page.new_tag("code")
        code.string = grade_id
        link.append(code)
        link.insert_after(f" {kind}" + (f": {verdicts[grade_id]}" if grade_id in verdicts else ""))


class FeedbackExporter(HTMLExporter):
    """nbconvert's ``HTMLExporter`` with :data:`CSP_META` right after ``<head>``,
    before anything a learner wrote, and without the template's own scripts
    (MathJax from a CDN, which the policy would block anyway); formulas are
    typeset as SVG instead, and the page made :func:`readable`. Raises
    ValueError if the template wrote no ``<head>`` (the page would be
    unprotected)."""

    def from_notebook_node(self, nb, resources=None, **kw):
        output, resources = super().from_notebook_node(nb, resources, **kw)
        page = BeautifulSoup(output, "html.parser")
        for script in page.find_all("script"):
            script.decompose()
        readable(page, nb)
        output = str(page)
        head = re.search(r"<head\b[^>]*>", output, re.IGNORECASE)
        if head is None:
            raise ValueError("the feedback template wrote no <head>: no place for the Content-Security-Policy")
        return f"{output[:head.end()]}\n{CSP_META}{output[head.end():]}", resources
