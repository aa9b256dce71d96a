"""The built site in a real browser (Debian's Chromium via Playwright), served
on 127.0.0.1 with no other host reachable, and its links. The tests of the
tests break a copy of the site once per failure mode."""
import re
import shutil

import matplotlib.pyplot as plt
import pytest
import yaml
from playwright.sync_api import sync_playwright

from autograder.course import REPO
from site_checks import AXE, CHROMIUM, CHROMIUM_ARGS, MIN_FIGURE_TEXT_PX, WIDTHS, broken_links, check_page, serve

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


@pytest.fixture(scope="session")
def report(browser, site):
    """check_page of a page at a width, each page visited once per width."""
    reports = {}

    def get(path, width):
        if (path, width) not in reports:
            reports[path, width] = check_page(browser, site, path, width, figures=path in CHAPTERS)
        return reports[path, width]
    return get


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("path", PAGES)
def test_page_works_offline_without_errors(report, path, width):
    assert report(path, width).page == []


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("path", PAGES)
def test_page_has_no_serious_accessibility_violations(report, path, width):
    assert report(path, width).axe == []


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("path", PAGES)
def test_page_does_not_scroll_sideways(report, path, width):
    assert report(path, width).layout == []


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("path", PAGES)
def test_chapter_list_and_page_contents_open(report, path, width):
    assert report(path, width).navigation == []


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("path", CHAPTERS)
def test_figures_enlarge_on_click(report, path, width):
    assert report(path, width).zoom == []


@pytest.mark.parametrize("path", CHAPTERS)
def test_figure_text_is_legible_on_a_phone(report, path):
    assert report(path, 390).figures == []


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
        # the same constant declared twice, as sphinx-thebe's THEBE_JS_URL was
        "book/04_masking.html": (r"</head>", "<script>const twice = 1;</script><script>const twice = 2;</script></head>"),
        # without the workaround for pydata-sphinx-theme#2451 the header buttons do nothing
        "book/05_multi_head.html": (r'<script src="../_static/sidebar-toggle.js[^"]*"></script>', ""),
        "book/06_normalization.html": (r"</main>", '<p style="white-space: nowrap">' + "no_break_" * 80 + "</p></main>"),
        # a list without list items, as the bibliography's citation list was
        "book/08_positional_encoding.html": (r"</main>", '<div role="list"><div>item</div></div></main>'),
        # one figure with text too small on a phone, one legible, one bitmap (text size unknowable)
        "book/09_elmo_bert.html": (r"</article>", '<img alt="small" src="../_images/small-text.svg">'
                                   '<img alt="fine" src="../_images/fine-text.svg">'
                                   '<img alt="bitmap" src="../_images/fine-text.png"></article>'),
    }
    for path, (pattern, replacement) in edits.items():
        text = (root / path).read_text()
        changed = re.sub(pattern, replacement, text, count=1)
        assert changed != text, path
        (root / path).write_text(changed)
    # Real matplotlib SVGs (text kept as <text>). A 12-inch row of three panels (864 pt) is
    # shown about 360 px wide on a phone: its 10 pt tick labels come out near 4 px. A
    # 3.5-inch figure fits the column at its natural size (252 pt = 336 px), so its 9 pt
    # tick labels show at 12 px.
    plt.rcParams["svg.fonttype"] = "none"
    for name, size, tick_pt in (("small-text", (12, 3), 10), ("fine-text", (3.5, 2.6), 9)):
        fig, axes = plt.subplots(1, 3 if name == "small-text" else 1, figsize=size, squeeze=False)
        for ax in axes.flat:
            ax.plot([0, 1], [0, 1])
            ax.set_title(r"$\sqrt{d_k}$", fontsize=12)
            ax.tick_params(labelsize=tick_pt)
        fig.savefig(root / "_images" / f"{name}.svg")
        fig.savefig(root / "_images" / f"{name}.png")
        plt.close(fig)
    with serve(root) as base:
        yield root, base


def test_the_checks_catch_lost_math(browser, broken_site):
    root, base = broken_site
    assert any("MathJax did not load" in p or "math not typeset" in p
               for p in check_page(browser, base, "book/03_scaled_attention.html", 1280).page)


def test_the_checks_catch_a_broken_image(browser, broken_site):
    root, base = broken_site
    assert any("image not loaded" in p for p in check_page(browser, base, "book/07_residual.html", 1280).page)


def test_the_checks_catch_a_missing_link_target(broken_site):
    root, _ = broken_site
    assert any("#no-such-anchor (no such anchor)" in p for p in broken_links(root))


def test_the_checks_catch_an_asset_from_outside(browser, broken_site):
    root, base = broken_site
    assert any("request leaves 127.0.0.1: https://cdn.example.org/lib.js" in p
               for p in check_page(browser, base, "book/02_qkv.html", 1280).page)


def test_the_checks_catch_an_uncaught_page_error(browser, broken_site):
    root, base = broken_site
    assert any("page error" in p and "twice" in p for p in check_page(browser, base, "book/04_masking.html", 1280).page)


@pytest.mark.parametrize("width", [390, 800])
def test_the_checks_catch_dead_sidebar_buttons(browser, broken_site, width):
    root, base = broken_site
    assert check_page(browser, base, "book/05_multi_head.html", width).navigation == [
        "the chapter list button does not show the chapter list",
        "the contents button does not show the page contents"]


def test_the_checks_catch_a_page_that_scrolls_sideways(browser, broken_site):
    root, base = broken_site
    [problem] = check_page(browser, base, "book/06_normalization.html", 390).layout
    assert "scrolls sideways" in problem and "no_break_" in problem


def test_the_checks_catch_a_critical_accessibility_violation(browser, broken_site):
    root, base = broken_site
    assert any(p.startswith("aria-required-children (critical)")
               for p in check_page(browser, base, "book/08_positional_encoding.html", 1280).axe)


def test_the_checks_catch_small_figure_text_and_bitmaps(browser, broken_site):
    root, base = broken_site
    report = check_page(browser, base, "book/09_elmo_bert.html", 390, figures=True).figures
    small = [p for p in report if "small-text.svg" in p]
    # about 10 * 358 / 1000 px: the exact column width depends on the theme's padding
    assert len(small) == 1 and 3 < float(re.search(r"smallest text ([\d.]+) px", small[0]).group(1)) < MIN_FIGURE_TEXT_PX
    assert not any("fine-text.svg" in p for p in report)
    assert "../_images/fine-text.png: not an SVG" in report
