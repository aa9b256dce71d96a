"""What a grading run leaves behind, read the way its readers (a terminal, a
spreadsheet, a browser, the formgrader) would: every output's text, the
secrets in it, active content in its HTML, control characters and formulas,
and a link-aware snapshot of the folders it must not change."""
from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import unicodedata
from html.parser import HTMLParser
from pathlib import Path

from nbconvert.filters.markdown_mistune import markdown2html_mistune

# The folders of --out that reach people (the gradebook and nbgrader's working copies do not).
OUTPUT_FOLDERS = ("feedback", "autograded", "logs")
ANSI_CSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")
FORMULA_STARTS = "=+-@"
# Notebook outputs a browser or the formgrader renders as HTML.
HTML_MIMES = ("text/html", "text/markdown", "image/svg+xml")


def outputs(out: Path, stdout: str, stderr: str) -> dict[str, str]:
    """name -> text of every output of a run: the command's stdout and stderr,
    its CSV files (grades.csv, grades_detail.csv, ...) and every file under
    feedback/, autograded/ and logs/ (decoded as UTF-8, bad bytes replaced)."""
    texts = {"stdout": stdout, "stderr": stderr}
    files = sorted(out.glob("*.csv"))
    files += sorted(p for folder in OUTPUT_FOLDERS for p in (out / folder).rglob("*") if p.is_file())
    for path in files:
        texts[str(path.relative_to(out))] = path.read_bytes().decode("utf-8", errors="replace")
    return texts


def leaks(texts: dict[str, str], secrets: dict[str, str]) -> list[tuple[str, str]]:
    """(output, secret's name) for every secret found in an output, looked for
    in the raw text and in what it shows: HTML without tags and entities,
    notebook JSON as its strings, ANSI colour codes removed."""
    found = []
    for name, text in texts.items():
        shown = "\n".join([text, *_shown(name, text)])
        shown += "\n" + ANSI_CSI.sub("", shown)
        found += [(name, secret) for secret, value in secrets.items() if value in shown]
    return found


def _shown(name: str, text: str) -> list[str]:
    if name.endswith((".html", ".htm")):
        parser = _Text()
        parser.feed(text)
        return ["".join(parser.data)]
    if name.endswith(".ipynb"):
        try:
            return ["".join(_strings(json.loads(text)))]
        except ValueError:
            return []
    return []


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


class _Text(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.data = []

    def handle_data(self, data):
        self.data.append(data)


def control_characters(texts: dict[str, str]) -> dict[str, list[str]]:
    """output -> the control characters in it (other than newline, tab, carriage return)."""
    found = {}
    for name, text in texts.items():
        chars = sorted({c for c in text if unicodedata.category(c) == "Cc" and c not in "\n\t\r"})
        if chars:
            found[name] = chars
    return found


def formulas(path: Path) -> list[str]:
    """The cells of a CSV file that a spreadsheet would run as a formula."""
    with open(path, newline="", encoding="utf-8") as fh:
        return [cell for row in csv.reader(fh) for cell in row if cell[:1] and cell[0] in FORMULA_STARTS]


class ActiveContent(HTMLParser):
    """What in an HTML text could run: script elements, on* handlers and
    javascript: URLs (in ``found``); and the Content-Security-Policy metas'
    contents (in ``policies``)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self.policies: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "script":
            self.found.append("<script>")
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"<{tag} {name}=...>")
            if value and re.sub(r"[\x00-\x20]", "", value).lower().startswith("javascript:"):
                self.found.append(f"<{tag} {name}={value[:40]!r}>")
        values = dict(attrs)
        if tag == "meta" and (values.get("http-equiv") or "").lower() == "content-security-policy":
            self.policies.append(values.get("content") or "")


def active_content(html_text: str) -> ActiveContent:
    parser = ActiveContent()
    parser.feed(html_text)
    parser.close()
    return parser


def blocks_scripts(policy: str) -> bool:
    """Whether a CSP lets no script run but the page's own files: its
    script-src (or else default-src) allows at most 'none' and 'self'."""
    directives = {d.split()[0].lower(): d.split()[1:] for d in policy.split(";") if d.split()}
    sources = directives.get("script-src", directives.get("default-src"))
    return sources is not None and {s.lower() for s in sources} <= {"'none'", "'self'"}


def notebook_active_content(path: Path) -> list[str]:
    """Active content a notebook brings to whoever renders it: in markdown
    cells, in HTML, markdown and SVG outputs, and any JavaScript output."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    found = []
    for cell in nb.get("cells", []):
        # markdown as the formgrader's and nbconvert's templates render it
        markdown = cell.get("cell_type") == "markdown"
        fragments = [markdown2html_mistune(_joined(cell.get("source", "")))] if markdown else []
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            found += [f"a {mime} output" for mime in data if "javascript" in mime]
            fragments += [markdown2html_mistune(_joined(data[mime])) if mime == "text/markdown" else _joined(data[mime])
                          for mime in HTML_MIMES if mime in data]
        for fragment in fragments:
            found += active_content(fragment).found
    return found


def _joined(source) -> str:
    return "".join(source) if isinstance(source, list) else source


def snapshot(folder: Path) -> dict[str, str]:
    """Every entry under ``folder``, links not followed: a file's SHA-256, a
    link's target, "folder" for a folder."""
    found = {}
    for parent, folders, files in os.walk(folder):  # does not descend into linked folders
        for name in folders + files:
            path = Path(parent, name)
            key = str(path.relative_to(folder))
            if path.is_symlink():
                found[key] = "-> " + os.readlink(path)
            elif path.is_dir():
                found[key] = "folder"
            else:
                found[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found
