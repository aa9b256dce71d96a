"""The built site in a real browser (Debian's Chromium via Playwright), served
on 127.0.0.1 with no other host reachable, and its links. The tests of the
tests break a copy of the site once per failure mode."""
import re
import shutil

import pytest
import yaml
from playwright.sync_api import sync_playwright

from autograder.course import REPO
from site_checks import AXE, CHROMIUM, CHROMIUM_ARGS, axe_violations, broken_links, page_problems, serve

HTML = REPO / "_build" / "html"
TOC = yaml.safe_load((REPO / "_toc.yml").read_text())
# _toc.yml's parts (Start here; the numbered chapters; glossary and bibliography), in order.
PAGES = [f"{TOC['root']}.html"] + [f"{entry['file']}.html" for part in TOC["parts"] for entry in part["chapters"]]
CHAPTERS = [p for p in PAGES if re.match(r"book/\d\d_", p)]


@pytest.fixture(scope="session")
def browser():
    assert AXE.exists(), "node_modules/axe-core missing: run `make test`, which installs it"
    with sync_playwright() as p:
        # Fails (never skips) when Chromium is absent: .ci/run installs it.
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def site(built):
    with serve(HTML) as base:
        yield base


@pytest.mark.parametrize("path", PAGES)
def test_page_works_offline_with_math_and_images(browser, site, path):
    assert page_problems(browser, site, path) == []


@pytest.mark.parametrize("path", PAGES)
def test_page_has_no_accessibility_violations_beyond_the_theme(browser, site, path):
    assert axe_violations(browser, site, path) == {}


def test_sidebar_lists_the_chapters_in_order(browser, site):
    page = browser.new_page()
    page.goto(site + PAGES[0])
    hrefs = page.evaluate("() => Array.from(document.querySelectorAll('nav.bd-docs-nav a')).map(a => a.href)")
    page.close()
    listed = [h.removeprefix(site) for h in hrefs if not h.startswith(site + PAGES[0])]
    assert listed == PAGES[1:]


@pytest.mark.parametrize("query", ["softmax", "positional encoding"])
def test_search_finds(browser, site, query):
    page = browser.new_page()
    page.goto(f"{site}search.html?q={query.replace(' ', '+')}")
    page.wait_for_selector("#search-results ul.search li", timeout=30000)
    assert page.locator("#search-results ul.search li").count() > 0
    page.close()


def test_no_broken_internal_links_or_anchors(built):
    assert broken_links(HTML) == []


def test_solutions_are_not_published(built):
    for path in HTML.rglob("*"):
        if path.is_file() and path.suffix in (".html", ".ipynb", ".txt", ".js"):
            text = path.read_text(errors="ignore")
            assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text, path


@pytest.fixture(scope="module")
def broken_site(built, tmp_path_factory):
    """A copy of the site with one page broken per failure mode."""
    root = tmp_path_factory.mktemp("broken") / "html"
    shutil.copytree(HTML, root)
    edits = {
        "book/03_scaled_attention.html": (r'<script defer="defer" src="../_static/es5/tex-chtml.js[^"]*"></script>', ""),
        "book/07_residual.html": (r'(<img [^>]*src=")[^"]+(")', r"\1../_images/missing.png\2"),
        "book/01_tensors.html": (r"</main>", '<a href="#no-such-anchor">x</a></main>'),
        "book/02_qkv.html": (r"</head>", '<script src="https://cdn.example.org/lib.js"></script></head>'),
    }
    for path, (pattern, replacement) in edits.items():
        text = (root / path).read_text()
        changed = re.sub(pattern, replacement, text, count=1)
        assert changed != text, path
        (root / path).write_text(changed)
    with serve(root) as base:
        yield root, base


def test_the_checks_catch_lost_math(browser, broken_site):
    root, base = broken_site
    assert any("MathJax did not load" in p or "math not typeset" in p
               for p in page_problems(browser, base, "book/03_scaled_attention.html"))


def test_the_checks_catch_a_broken_image(browser, broken_site):
    root, base = broken_site
    assert any("image not loaded" in p for p in page_problems(browser, base, "book/07_residual.html"))


def test_the_checks_catch_a_missing_link_target(broken_site):
    root, _ = broken_site
    assert any("#no-such-anchor (no such anchor)" in p for p in broken_links(root))


def test_the_checks_catch_an_asset_from_outside(browser, broken_site):
    root, base = broken_site
    assert any("request leaves 127.0.0.1: https://cdn.example.org/lib.js" in p
               for p in page_problems(browser, base, "book/02_qkv.html"))
