"""Local Sphinx extension: workarounds for markup that the theme stack generates
and that fails in a reader's browser or in axe-core. Each fix names its upstream
cause; remove it when the pinned version no longer needs it (tests/test_site.py
checks the result at 390, 800 and 1280 px)."""
from __future__ import annotations

from pathlib import Path

import pydata_sphinx_theme

BOOK = Path(__file__).resolve().parent.parent

# pydata-sphinx-theme 0.17.x binds its sidebar buttons to the first `.primary-toggle`
# and `.secondary-toggle` only, which sphinx-book-theme hides: below 992 px the visible
# buttons do nothing (https://github.com/pydata/pydata-sphinx-theme/issues/2451).
SIDEBAR_TOGGLE_BUG = ("0.17.0", "0.17.1")

# Replacements in each page body (old markup -> accessible markup).
BODY_FIXES = (
    # Sphinx gives citations the deprecated DPUB role doc-biblioentry inside role="list";
    # a list needs listitem children (axe: aria-required-children, aria-allowed-role,
    # aria-deprecated-role). DPUB-ARIA 1.1 deprecates doc-biblioentry in favour of listitem.
    ('role="doc-biblioentry"', 'role="listitem"'),
    # myst-nb labels every hidden-cell <summary> "Toggle hidden content" while it shows
    # "Show code cell source": a name that does not contain the visible text
    # (axe: label-content-name-mismatch). Without aria-label the visible text names it.
    ('<summary aria-label="Toggle hidden content">', "<summary>"),
)


def fix_page(app, pagename, templatename, context, doctree):
    """Drop duplicated inline scripts and make the body's markup accessible."""
    # Sphinx 7.4 adds an inline script registered after Builder.init() twice (once with
    # filename None, once with ''): sphinx-thebe's `const THEBE_JS_URL` then throws
    # "Identifier 'THEBE_JS_URL' has already been declared" on every page.
    seen, scripts = set(), []
    for script in context.get("script_files", []):
        key = (script.filename or "", tuple(sorted(script.attributes.items())))
        if key not in seen:
            seen.add(key)
            scripts.append(script)
    context["script_files"] = scripts
    if "body" in context:
        for old, new in BODY_FIXES:
            context["body"] = context["body"].replace(old, new)


def add_paths(app, config):
    """Our static files and the theme templates we override (book/_templates)."""
    config.html_static_path.append(str(BOOK / "_static"))
    config.templates_path.insert(0, str(BOOK / "_templates"))


def setup(app):
    app.connect("config-inited", add_paths)
    app.connect("html-page-context", fix_page, priority=900)
    app.add_css_file("site.css")
    app.add_js_file("figure-zoom.js", loading_method="defer")
    if pydata_sphinx_theme.__version__ in SIDEBAR_TOGGLE_BUG:
        app.add_js_file("sidebar-toggle.js")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
