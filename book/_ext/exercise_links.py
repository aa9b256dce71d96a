"""The ``exercise-links`` directive: every way to open a chapter's exercise notebook.

In a chapter's Exercises section::

    ```{exercise-links} ../exercises/03_scaled_attention/scaled_attention.ipynb
    ```

renders a list: download the notebook (Sphinx's ``download`` role, so the file is
copied into ``_downloads``), open it in Colab, open it in Binder, and the Start here
page. The Colab and Binder links are derived from ``repository.url``, ``branch`` and
``path_to_book`` of ``_config.yml`` (Jupyter Book passes them on as the theme options
``repository_url``, ``repository_branch``, ``path_to_docs``) and from
``launch_buttons.binderhub_url``: the one setting that the theme's own launch buttons
use. The notebook also becomes the first item of the page's download menu.
"""
from __future__ import annotations

import os
import posixpath
from urllib.parse import quote, urlparse

from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.util.docutils import SphinxDirective

START_HERE = "/book/start_here"  # the page on installing, opening, testing and handing in
METADATA_KEY = "exercise_notebook"  # page metadata: the notebook's path under the source dir


def github_repository(app: Sphinx) -> tuple[str, str, str]:
    """(owner/name, branch, path of the book in the repository) from the theme options.

    Raises ExtensionError when the repository is not on github.com: Colab opens
    notebooks from GitHub only (colab.research.google.com/github/...)."""
    options = app.config.html_theme_options
    url = urlparse(options.get("repository_url", ""))
    parts = url.path.strip("/").removesuffix(".git").split("/")
    if url.netloc != "github.com" or len(parts) != 2:
        raise ExtensionError(f"exercise-links: repository.url must be https://github.com/<owner>/<name>, "
                             f"got {options.get('repository_url')!r}")
    return "/".join(parts), options.get("repository_branch") or "main", options.get("path_to_docs", "")


def launch_urls(app: Sphinx, rel_path: str) -> tuple[str, str]:
    """Colab and Binder URLs of the file ``rel_path`` (relative to the source dir)."""
    repo, branch, book_path = github_repository(app)
    path = posixpath.normpath(posixpath.join(book_path, rel_path))
    binderhub = app.config.html_theme_options.get("launch_buttons", {}).get("binderhub_url", "https://mybinder.org")
    colab = f"https://colab.research.google.com/github/{repo}/blob/{branch}/{path}"
    binder = f"{binderhub.rstrip('/')}/v2/gh/{repo}/{branch}?labpath={quote(path, safe='')}"
    return colab, binder


class ExerciseLinks(SphinxDirective):
    """``exercise-links <notebook path relative to this page>``."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        rel_path, abs_path = self.env.relfn2path(self.arguments[0])
        if not abs_path or not os.path.isfile(abs_path):
            raise self.error(f"exercise-links: no such notebook: {self.arguments[0]}")
        self.env.metadata[self.env.docname][METADATA_KEY] = rel_path
        colab, binder = launch_urls(self.env.app, rel_path)
        download = addnodes.download_reference(
            "", "", nodes.literal("", posixpath.basename(rel_path)),
            reftarget=self.arguments[0], refdoc=self.env.docname, refexplicit=True)
        start_here = addnodes.pending_xref(
            "", nodes.inline("", "Start here"), refdomain="std", reftype="doc",
            reftarget=START_HERE, refdoc=self.env.docname, refexplicit=True)
        items = [
            [nodes.Text("Download the exercise notebook "), download],
            [nodes.reference("", "Open it in Colab", refuri=colab)],
            [nodes.reference("", "Open it in Binder", refuri=binder)],
            [nodes.Text("How to install, open, test and hand it in: "), start_here],
        ]
        links = nodes.bullet_list(classes=["exercise-links"])
        for content in items:
            links += nodes.list_item("", nodes.paragraph("", "", *content))
        return [links]


def download_exercise_first(app: Sphinx, pagename, templatename, context, doctree) -> None:
    """Put the page's exercise notebook first in the theme's download menu."""
    rel_path = app.env.metadata.get(pagename, {}).get(METADATA_KEY)
    menu = next((b for b in context.get("header_buttons", []) if b.get("label") == "download-buttons"), None)
    if rel_path is None or menu is None:
        return
    menu["buttons"].insert(0, {
        "type": "link",
        "url": f"{context['pathto']('_downloads', 1)}/{app.env.dlfiles[rel_path][1]}",
        "text": "exercise .ipynb",
        "tooltip": "Download the exercise notebook",
        "icon": "fas fa-pen-to-square",
        "label": "download-exercise-button",
    })


def setup(app: Sphinx) -> dict:
    app.add_directive("exercise-links", ExerciseLinks)
    # After sphinx-book-theme's add_header_buttons (priority 501) has built the menu.
    app.connect("html-page-context", download_exercise_first, priority=502)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
