"""Math in feedback pages, typeset when the page is written, as inline SVG.

Feedback pages forbid every script (:data:`autograder.feedback.CSP_META`), so
MathJax cannot run in them, and a learner reads them offline. Instead the MathJax
the site ships (``node_modules/mathjax``, pinned by package-lock.json) turns
each formula into SVG under Node.js (``tex_svg.js``), once per distinct formula
in a process. The SVG is cut down to drawing elements and attributes
(:data:`SVG_ELEMENTS`, :data:`SVG_ATTRIBUTES`): formulas can come from learners.
Without Node.js or MathJax, or for TeX that MathJax rejects, a formula stays
as its TeX source, and one warning says why.
"""
from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
from pathlib import Path

from bs4 import BeautifulSoup, NavigableString, Tag

from .course import REPO

MATHJAX = REPO / "node_modules" / "mathjax"
SCRIPT = Path(__file__).with_name("tex_svg.js")
# $$display$$, \[display\], \(inline\), $inline$ (not \$, not $ 5 $ with spaces inside).
MATH = re.compile(r"\$\$(.+?)\$\$|\\\[(.+?)\\\]|\\\((.+?)\\\)|(?<![\\$\w])\$(?![\s$])([^$\n]+?)(?<![\s\\])\$(?![\w$])",
                  re.S)
SVG_ELEMENTS = {"mjx-container", "svg", "g", "path", "rect", "line", "polyline", "polygon", "title"}
SVG_ATTRIBUTES = {"viewbox", "xmlns", "width", "height", "d", "transform", "x", "y", "x1", "x2", "y1", "y2",
                  "points", "fill", "stroke", "stroke-width", "role", "focusable", "aria-hidden", "data-c",
                  "data-mml-node", "class", "display", "jax"}
VERTICAL_ALIGN = re.compile(r"vertical-align: -?[\d.]+ex;")
SKIP = {"code", "pre", "script", "style", "svg"}
log = logging.getLogger(__name__)
_cache: dict[tuple[str, bool], str | None] = {}


def render(formulas: list[tuple[str, bool]]) -> list[str | None]:
    """SVG markup of each (tex, display) formula, or None where it cannot be typeset."""
    todo = sorted({f for f in formulas if f not in _cache})
    if todo:
        node = shutil.which("node")
        if node is None or not (MATHJAX / "package.json").exists():
            log.warning("math in feedback pages stays TeX: %s", "Node.js is not installed" if node is None
                        else f"{MATHJAX} is missing (make installs it)")
            _cache.update(dict.fromkeys(todo))
        else:
            done = subprocess.run([node, str(SCRIPT), str(MATHJAX)], input=json.dumps(todo), capture_output=True,
                                  text=True, timeout=120)
            if done.returncode != 0:
                log.warning("math in feedback pages stays TeX: MathJax failed: %s", done.stderr.strip()[-500:])
                _cache.update(dict.fromkeys(todo))
            else:
                _cache.update({f: clean(svg) if svg else None for f, svg in zip(todo, json.loads(done.stdout))})
    return [_cache[f] for f in formulas]


def clean(svg: str) -> str:
    """MathJax's output with only drawing elements and attributes left."""
    soup = BeautifulSoup(svg, "html.parser")
    for tag in soup.find_all(True):
        if tag.name not in SVG_ELEMENTS:
            tag.decompose()
            continue
        style = tag.get("style", "")
        tag.attrs = {k: v for k, v in tag.attrs.items() if k.lower() in SVG_ATTRIBUTES}
        if tag.name == "svg" and VERTICAL_ALIGN.fullmatch(style):
            tag["style"] = style  # the baseline of inline math
    return str(soup)


def typeset(page: BeautifulSoup, selector: str) -> None:
    """Replace the math in the text of every element matching ``selector``
    (rendered Markdown) by its SVG, leaving code and preformatted text alone."""
    texts = [t for element in page.select(selector) for t in element.find_all(string=True)
             if not any(p.name in SKIP for p in t.parents if isinstance(p, Tag))]
    found = [(text, list(MATH.finditer(str(text)))) for text in texts]
    formulas = [(next(g for g in m.groups() if g is not None).strip(), m.group(1) is not None or m.group(2) is not None)
                for _, matches in found for m in matches]
    svgs = iter(render(formulas))
    for text, matches in found:
        if not matches:
            continue
        pieces, end = [], 0
        for m in matches:
            svg = next(svgs)
            pieces.append(NavigableString(str(text)[end:m.start()]))
            pieces.append(BeautifulSoup(svg, "html.parser") if svg else NavigableString(m.group(0)))
            end = m.end()
        pieces.append(NavigableString(str(text)[end:]))
        for piece in pieces:
            text.insert_before(piece)
        text.extract()
