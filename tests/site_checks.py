"""Checks of the built site as a reader's browser sees it (Playwright driving
Debian's Chromium) and of its internal links; used by test_site.py on the real
build and on deliberately broken copies."""
from __future__ import annotations

import functools
import http.server
import threading
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

from bs4 import BeautifulSoup

CHROMIUM = "/usr/bin/chromium"
AXE = Path(__file__).resolve().parent.parent / "node_modules" / "axe-core" / "axe.min.js"
# Chromium must not reach anything but the site: every other host fails to resolve.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]
# Console errors of the theme itself (pydata-sphinx-theme reads an empty stored theme mode).
CONSOLE_BASELINE = ("Got invalid theme mode",)
# axe-core rules violated by markup that the theme and sphinxcontrib-bibtex generate,
# not by the course's content: the search button's label, the sidebar outside a
# landmark region, and the bibliography's doc-biblioentry roles.
AXE_BASELINE = {"label-content-name-mismatch", "region", "aria-allowed-role",
                "aria-deprecated-role", "aria-required-children"}


@contextmanager
def serve(root: Path):
    """Serve ``root`` on 127.0.0.1 (a free port); yields the base URL."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()


def page_problems(browser, base: str, path: str) -> list[str]:
    """Everything wrong with one page: failed or outside requests, console
    errors beyond the baseline, untypeset math, broken or unlabelled images."""
    problems: list[str] = []
    page = browser.new_page()
    page.on("request", lambda r: None if r.url.startswith(base) or r.url.startswith("data:")
            else problems.append(f"request leaves 127.0.0.1: {r.url}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} ({r.failure})"))
    page.on("response", lambda r: r.status >= 400 and problems.append(f"HTTP {r.status}: {r.url}"))
    page.on("console", lambda m: m.type == "error" and not m.text.startswith(CONSOLE_BASELINE)
            and problems.append(f"console error: {m.text}"))
    try:
        page.goto(urljoin(base, path), wait_until="load")
        if page.evaluate("() => document.querySelectorAll('.math').length") > 0:
            typeset = page.evaluate("""() => new Promise(done => {
                const wait = (n) => (window.MathJax && MathJax.startup && MathJax.startup.promise)
                    ? MathJax.startup.promise.then(() => done(true), () => done(false))
                    : (n > 0 ? setTimeout(() => wait(n - 1), 100) : done(false));
                wait(100); })""")
            if not typeset:
                problems.append("MathJax did not load")
            raw = page.evaluate("""() => Array.from(document.querySelectorAll('.math'))
                .filter(e => !e.querySelector('mjx-container')).map(e => e.textContent.slice(0, 60))""")
            problems += [f"math not typeset: {text}" for text in raw]
        leftover = page.evaluate("""() => { const t = document.querySelector('main') || document.body;
            const c = t.cloneNode(true); c.querySelectorAll('pre, code, script, mjx-container').forEach(e => e.remove());
            return ['\\\\frac', '\\\\sqrt', '$$'].filter(s => c.textContent.includes(s)); }""")
        problems += [f"raw LaTeX left in the text: {s}" for s in leftover]
        images = page.evaluate("""() => Array.from(document.querySelectorAll('main img')).map(i =>
            [i.getAttribute('src'), i.complete && i.naturalWidth > 0, (i.getAttribute('alt') || '').trim()])""")
        for src, loaded, alt in images:
            if not loaded:
                problems.append(f"image not loaded: {src}")
            if not alt:
                problems.append(f"image without alt text: {src}")
    finally:
        page.close()
    return problems


def axe_violations(browser, base: str, path: str) -> dict[str, list[str]]:
    """axe-core violations (rule id -> offending elements) beyond AXE_BASELINE."""
    page = browser.new_page()
    try:
        page.goto(urljoin(base, path), wait_until="load")
        page.add_script_tag(path=str(AXE))
        found = page.evaluate("""() => axe.run(document, {resultTypes: ['violations']}).then(r =>
            r.violations.map(v => [v.id, v.nodes.slice(0, 3).map(n => n.target.join(' '))]))""")
    finally:
        page.close()
    return {rule: nodes for rule, nodes in found if rule not in AXE_BASELINE}


def broken_links(root: Path) -> list[str]:
    """Internal links of every built page whose file or anchor does not exist."""
    ids: dict[Path, set[str]] = {}

    def anchors(path: Path) -> set[str]:
        if path not in ids:
            soup = BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")
            ids[path] = {tag["id"] for tag in soup.find_all(id=True)} | {a["name"] for a in soup.find_all("a", attrs={"name": True})}
        return ids[path]

    problems = []
    for page in sorted(root.rglob("*.html")):
        soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
        for a in soup.find_all("a", href=True):
            url = urlparse(a["href"])
            if url.scheme or url.netloc or a["href"].startswith(("mailto:", "javascript:")):
                continue
            target = (page.parent / unquote(url.path)).resolve() if url.path else page
            if target.is_dir():
                target = target / "index.html"
            where = f"{page.relative_to(root)}: {a['href']}"
            if not target.exists():
                problems.append(f"{where} (no such file)")
            elif url.fragment and target.suffix == ".html" and unquote(url.fragment) not in anchors(target):
                problems.append(f"{where} (no such anchor)")
    return problems
