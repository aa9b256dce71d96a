"""Checks of the built site as a reader's browser sees it (Playwright driving
Debian's Chromium) and of its internal links; used by test_site.py on the real
build and on deliberately broken copies."""
from __future__ import annotations

import functools
import http.server
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

from bs4 import BeautifulSoup
from playwright.sync_api import TimeoutError as PlaywrightTimeout

CHROMIUM = "/usr/bin/chromium"
AXE = Path(__file__).resolve().parent.parent / "node_modules" / "axe-core" / "axe.min.js"
# Chromium must not reach anything but the site: every other host fails to resolve.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]
# Console errors of the theme itself (pydata-sphinx-theme reads an empty stored theme mode).
CONSOLE_BASELINE = ("Got invalid theme mode",)
# Reader widths: a phone, a tablet (both below the theme's 992 px breakpoint, where the
# sidebars open as dialogs) and a laptop.
WIDTHS = (390, 800, 1280)
WIDE = 992
# axe-core rules that may still be violated, each with its reason and upstream link. Only
# moderate or minor findings can be excused: critical and serious ones always fail.
AXE_BASELINE = {
    "region": "sphinx-book-theme puts the site title in the primary sidebar, outside any landmark "
              "(https://github.com/pydata/pydata-sphinx-theme/pull/1454, open)",
}
BLOCKING = ("critical", "serious")
# Smallest text of a figure on a phone, in CSS px.
MIN_FIGURE_TEXT_PX = 9


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


@dataclass
class PageReport:
    """What one visit of one page at one width found wrong, by kind."""
    page: list[str] = field(default_factory=list)        # requests, console and page errors, math, images
    axe: list[str] = field(default_factory=list)         # accessibility violations not excused
    layout: list[str] = field(default_factory=list)      # the page scrolls sideways
    navigation: list[str] = field(default_factory=list)  # chapter list or page contents unreachable
    figures: list[str] = field(default_factory=list)     # figure text too small to read (chapters)
    zoom: list[str] = field(default_factory=list)        # a figure that does not enlarge


# The innermost elements reaching past the window's right edge (their box or, for text,
# their content) that no scrolling ancestor contains: what makes a page scroll sideways.
OVERFLOWING = """() => {
    const past = new Set(Array.from(document.querySelectorAll('body *')).filter(e => {
        const r = e.getBoundingClientRect();
        const scrolls = getComputedStyle(e).overflowX !== 'visible';
        if (r.left + (scrolls ? r.width : Math.max(r.width, e.scrollWidth)) <= innerWidth + 0.5) return false;
        for (let a = e; a && a !== document.body; a = a.parentElement) {
            const style = getComputedStyle(a);
            if ((a !== e && style.overflowX !== 'visible') || style.position === 'fixed') return false;
        }
        return true; }));
    return Array.from(past).filter(e => !Array.from(e.children).some(c => past.has(c)))
        .map(e => `<${e.tagName.toLowerCase()} class="${e.className}"> ${(e.textContent || '').trim().slice(0, 50)}`); }"""

# For each article image: [src, error or null, smallest text size in CSS px as rendered].
# The SVG is fetched, drawn offscreen at the image's rendered width, and each <text>'s font
# size is scaled by its screen transform (viewBox scaling and any transforms included).
FIGURE_TEXT = """async () => {
    const out = [];
    for (const img of document.querySelectorAll('.bd-article img')) {
        const src = img.getAttribute('src');
        if (!/\\.svg$/i.test(new URL(img.currentSrc || img.src).pathname)) { out.push([src, 'not an SVG', null]); continue; }
        const svg = new DOMParser().parseFromString(await (await fetch(img.currentSrc)).text(), 'image/svg+xml').documentElement;
        if (!svg.getAttribute('viewBox')) { out.push([src, 'SVG without a viewBox', null]); continue; }
        const host = document.createElement('div');
        host.style.cssText = 'position: absolute; left: 0; top: 0; visibility: hidden';
        const node = document.importNode(svg, true);
        node.setAttribute('width', img.getBoundingClientRect().width);
        node.removeAttribute('height');
        host.append(node);
        document.body.append(host);
        const sizes = Array.from(node.querySelectorAll('text')).map(t => {
            const m = t.getScreenCTM();
            return parseFloat(getComputedStyle(t).fontSize) * Math.sqrt(Math.abs(m.a * m.d - m.b * m.c));
        }).filter(size => size > 0);
        host.remove();
        out.push(sizes.length ? [src, null, Math.min(...sizes)]
                              : [src, "no <text> element (text drawn as paths: use svg.fonttype = 'none')", null]);
    }
    return out; }"""


def check_page(browser, base: str, path: str, width: int, figures: bool = False) -> PageReport:
    """Visit ``path`` once in a window ``width`` CSS px wide and report everything wrong:
    requests that fail or leave 127.0.0.1, console errors beyond the baseline, uncaught page
    errors, untypeset math, broken or unlabelled images, sideways scrolling, axe-core
    violations, sidebars that do not open, figures that do not enlarge and, with ``figures``,
    figure text under MIN_FIGURE_TEXT_PX."""
    report = PageReport()
    problems = report.page
    page = browser.new_page(viewport={"width": width, "height": 800})
    page.on("request", lambda r: None if r.url.startswith(base) or r.url.startswith("data:")
            else problems.append(f"request leaves 127.0.0.1: {r.url}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} ({r.failure})"))
    page.on("response", lambda r: r.status >= 400 and problems.append(f"HTTP {r.status}: {r.url}"))
    page.on("console", lambda m: m.type == "error" and not m.text.startswith(CONSOLE_BASELINE)
            and problems.append(f"console error: {m.text}"))
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
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

        scroll = page.evaluate("() => [document.documentElement.scrollWidth, innerWidth]")
        if scroll[0] > scroll[1]:
            report.layout.append(f"scrolls sideways: {scroll[0]} px wide in {scroll[1]} px, because of "
                                 + "; ".join(page.evaluate(OVERFLOWING)[:3]))

        report.axe = axe_violations(page)
        if figures:
            for src, error, size in page.evaluate(FIGURE_TEXT):
                if error or size < MIN_FIGURE_TEXT_PX:
                    report.figures.append(f"{src}: {error or f'smallest text {size:.1f} px'}")
        report.navigation = navigation_problems(page, width)
        report.zoom = zoom_problems(page)
    finally:
        page.close()
    return report


def axe_violations(page) -> list[str]:
    """axe-core violations of the loaded page that AXE_BASELINE does not excuse (never a
    critical or serious one)."""
    page.add_script_tag(path=str(AXE))
    found = page.evaluate("""() => axe.run(document, {resultTypes: ['violations']}).then(r =>
        r.violations.map(v => [v.id, v.impact, v.nodes.slice(0, 3).map(n => n.target.join(' '))]))""")
    return [f"{rule} ({impact}): {nodes}" for rule, impact, nodes in found
            if impact in BLOCKING or rule not in AXE_BASELINE]


def navigation_problems(page, width: int) -> list[str]:
    """Open the chapter list and the page contents as a reader would at this width: below
    WIDE by the header buttons (dialogs); at WIDE and above the chapter list shows, and its
    button hides and shows it again."""
    problems = []
    chapters = page.locator("nav.bd-docs-nav").first
    if width < WIDE:
        toggle = page.locator(".primary-toggle:visible")
        if toggle.count() == 0:
            return ["no visible button for the chapter list"]
        toggle.first.click()
        if not (page.evaluate("() => document.getElementById('pst-primary-sidebar-modal').open")
                and shows(chapters, "visible")):
            problems.append("the chapter list button does not show the chapter list")
        page.evaluate("() => document.getElementById('pst-primary-sidebar-modal').close()")
    else:
        if not chapters.is_visible():
            problems.append("the chapter list is not shown")
        toggle = page.locator(".primary-toggle:visible")
        if toggle.count() == 0:
            return problems + ["no visible button for the chapter list"]
        toggle.first.click()
        hidden = shows(chapters, "hidden")
        toggle.first.click()
        if not (hidden and shows(chapters, "visible")):
            problems.append("the chapter list button does not hide and show the chapter list")
    contents = page.locator("nav.page-toc").first
    if page.locator("nav.page-toc").count() and not contents.is_visible():
        toggle = page.locator(".secondary-toggle:visible")
        if toggle.count() == 0:
            return problems + ["page contents hidden and no visible button for them"]
        toggle.first.click()
        if not shows(contents, "visible"):
            problems.append("the contents button does not show the page contents")
        page.evaluate("() => document.getElementById('pst-secondary-sidebar-modal').close()")
    return problems


def shows(locator, state: str) -> bool:
    """Whether ``locator`` reaches ``state`` ("visible" or "hidden") within 2 s (the theme
    animates its sidebars)."""
    try:
        locator.wait_for(state=state, timeout=2000)
        return True
    except PlaywrightTimeout:
        return False


def zoom_problems(page) -> list[str]:
    """Every article image must enlarge on click (book/_static/figure-zoom.js): the first is
    clicked and must show wider than in the text, then close with Escape."""
    images = page.locator(".bd-article img")
    if images.count() == 0:
        return []
    problems = [f"image does not enlarge on click: {src}" for src in page.evaluate(
        "() => Array.from(document.querySelectorAll('.bd-article img')).filter(i => !i.closest('a.figure-zoom-link')).map(i => i.getAttribute('src'))")]
    if problems:
        return problems
    inline = images.first.bounding_box()["width"]
    images.first.click()
    large = page.locator("dialog.figure-zoom[open] img")
    if large.count() == 0:
        return ["clicking a figure opens no enlarged view"]
    page.wait_for_function("() => document.querySelector('dialog.figure-zoom img').complete")
    if not large.bounding_box()["width"] > inline:
        problems.append(f"the enlarged figure is not wider than in the text ({inline:.0f} px)")
    page.keyboard.press("Escape")
    if page.locator("dialog.figure-zoom[open]").count():
        problems.append("Escape does not close the enlarged figure")
    return problems


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
