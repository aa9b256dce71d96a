"""Every way into an exercise notebook: the Colab, Binder and download links of the
built site open files of this repository, follow the one repository setting of
_config.yml, and each chapter offers its exercise first."""
import filecmp
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
import yaml
from bs4 import BeautifulSoup

from autograder.course import NOTEBOOKS, REPO
from test_site import CHAPTERS, HTML

CONFIG = yaml.safe_load((REPO / "_config.yml").read_text())
COLAB = "colab.research.google.com"


def github(config: dict) -> tuple[str, str]:
    """(owner/name, branch) of ``repository`` in a _config.yml."""
    return urlparse(config["repository"]["url"]).path.strip("/"), config["repository"]["branch"]


def opened_file(url: str, binderhub: str) -> tuple[str, str, str] | None:
    """(owner/name, branch, repository path) that a Colab or Binder URL opens; None for
    other URLs. Colab: /github/<owner>/<name>/blob/<branch>/<path>; Binder:
    /v2/gh/<owner>/<name>/<branch>?labpath=<path> or ?urlpath=tree/<path>."""
    parts = urlparse(url)
    if parts.netloc == COLAB:
        return re.fullmatch(r"/github/([^/]+/[^/]+)/blob/([^/]+)/(.+)", parts.path).groups()
    if parts.netloc == urlparse(binderhub).netloc:
        repo, branch = re.fullmatch(r"/v2/gh/([^/]+/[^/]+)/([^/]+)", parts.path).groups()
        query = parse_qs(parts.query)
        path = query["labpath"][0] if "labpath" in query else query["urlpath"][0].removeprefix("tree/")
        return repo, branch, path
    return None


def tracked_files() -> set[str]:
    listing = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True, check=True)
    return set(filter(None, listing.stdout.split("\0")))


def exercise_of(chapter: str) -> Path:
    number = re.match(r"book/(\d\d)_", chapter).group(1)
    assignment = next(a for a in NOTEBOOKS if a.startswith(number))
    return REPO / "exercises" / assignment / f"{NOTEBOOKS[assignment]}.ipynb"


def soup(page: Path) -> BeautifulSoup:
    return BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")


def test_every_launch_link_opens_a_tracked_file_of_the_configured_repository(built):
    tracked, binderhub = tracked_files(), CONFIG["launch_buttons"]["binderhub_url"]
    repo, branch = github(CONFIG)
    opened, downloads = [], []
    for page in sorted(HTML.rglob("*.html")):
        for a in soup(page).find_all("a", href=True):
            where = f"{page.relative_to(HTML)}: {a['href']}"
            target = opened_file(a["href"], binderhub)
            if target is not None:
                assert target[:2] == (repo, branch), where
                assert target[2] in tracked and (REPO / target[2]).is_file(), where
                opened.append(target[2])
            elif "_downloads/" in a["href"]:
                copy = (page.parent / a["href"]).resolve()
                same = [f for f in tracked if Path(f).name == copy.name and filecmp.cmp(REPO / f, copy, shallow=False)]
                assert copy.is_file() and same, where
                downloads.append(same)
    # Each chapter: its exercise on Colab and Binder, the theme's Binder button for its .md.
    notebooks = {exercise_of(c).relative_to(REPO).as_posix() for c in CHAPTERS}
    assert notebooks <= set(opened) and {f"{c[:-5]}.md" for c in CHAPTERS} <= set(opened)
    assert len(downloads) >= len(CHAPTERS)


@pytest.mark.parametrize("path", CHAPTERS)
def test_chapter_links_its_exercise(built, path):
    notebook = exercise_of(path)
    in_repo = notebook.relative_to(REPO).as_posix()
    repo, branch = github(CONFIG)
    links = soup(HTML / path).select_one("ul.exercise-links")
    assert links is not None, f"{path}: no exercise-links list in its Exercises section"
    hrefs = [a["href"] for a in links.find_all("a", href=True)]
    assert f"https://{COLAB}/github/{repo}/blob/{branch}/{in_repo}" in hrefs
    assert f"https://mybinder.org/v2/gh/{repo}/{branch}?labpath={in_repo.replace('/', '%2F')}" in hrefs
    assert "start_here.html" in hrefs
    download = links.select_one("a.download")
    assert filecmp.cmp((HTML / path).parent / download["href"], notebook, shallow=False)
    page = (HTML / path).read_text()
    # the theme's launch button opens the chapter itself on Binder; no Colab link to a .md
    assert f"https://mybinder.org/v2/gh/{repo}/{branch}?urlpath=tree/{path[:-5]}.md" in page
    assert not re.search(r'colab\.research\.google\.com/[^"]*\.md"', page)


@pytest.mark.parametrize("path", CHAPTERS)
def test_download_menu_offers_the_exercise_first(built, path):
    first = soup(HTML / path).select_one(".dropdown-download-buttons .dropdown-menu li > *")
    assert first.name == "a" and "exercise" in first.get_text(), first
    assert filecmp.cmp((HTML / path).parent / first["href"], exercise_of(path), shallow=False)


@pytest.mark.parametrize("url, builds", [
    ("https://github.com/example-org/example-course", True),
    ("https://gitlab.com/example-org/example-course", False),  # Colab opens GitHub files only
])
def test_links_follow_the_repository_setting(tmp_path, url, builds):
    """A one-page book with the course's _config.yml, its repository setting changed."""
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    config["repository"] = {"url": url, "branch": "term-2027", "path_to_book": ""}
    config["execute"] = {"execute_notebooks": "off"}
    for key in ("html_static_path", "mathjax_path"):  # node_modules is not copied
        del config["sphinx"]["config"][key]
    (tmp_path / "_config.yml").write_text(yaml.safe_dump(config))
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: book/index\nchapters:\n  - file: book/start_here\n")
    (tmp_path / "book").mkdir()
    header = (REPO / "book" / "01_tensors.md").read_text().split("\n# ")[0]  # jupytext: a notebook page
    (tmp_path / "book" / "index.md").write_text(
        f"{header}\n# A chapter\n\n```{{exercise-links}} ../exercises/03_scaled_attention/scaled_attention.ipynb\n```\n")
    (tmp_path / "book" / "start_here.md").write_text("# Start here\n")
    (tmp_path / "book" / "references.bib").write_text((REPO / "book" / "references.bib").read_text())
    for folder in ("_ext", "images"):
        (tmp_path / "book" / folder).symlink_to(REPO / "book" / folder)
    (tmp_path / "exercises" / "03_scaled_attention").mkdir(parents=True)
    notebook = REPO / "exercises" / "03_scaled_attention" / "scaled_attention.ipynb"
    (tmp_path / "exercises" / "03_scaled_attention" / notebook.name).write_bytes(notebook.read_bytes())
    result = subprocess.run([str(Path(sys.executable).with_name("jupyter-book")), "build", str(tmp_path), "-W", "-n"],
                            capture_output=True, text=True, timeout=600)
    if not builds:
        assert result.returncode != 0 and "repository.url must be https://github.com/" in result.stdout + result.stderr
        return
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    page = soup(tmp_path / "_build" / "html" / "book" / "index.html")
    hrefs = {a["href"] for a in page.find_all("a", href=True)}
    path = "exercises/03_scaled_attention/scaled_attention.ipynb"
    assert f"https://{COLAB}/github/example-org/example-course/blob/term-2027/{path}" in hrefs
    assert f"https://mybinder.org/v2/gh/example-org/example-course/term-2027?labpath={path.replace('/', '%2F')}" in hrefs
    assert "https://mybinder.org/v2/gh/example-org/example-course/term-2027?urlpath=tree/book/index.md" in hrefs
    assert not any("attention-course/attention-course" in h for h in hrefs)
    first = page.select_one(".dropdown-download-buttons .dropdown-menu li > a")
    assert re.fullmatch(r"\.\./_downloads/\w+/scaled_attention\.ipynb", first["href"]), first


def test_binder_installs_the_pinned_versions():
    """Binder builds from binder/: the same versions as requirements.txt, Python included."""
    def pins(path):
        return dict(line.split("==") for line in path.read_text().splitlines() if "==" in line)
    binder, pinned = pins(REPO / "binder" / "requirements.txt"), pins(REPO / "requirements.txt")
    assert {"torch", "numpy", "matplotlib", "jupytext", "myst-nb", "ipykernel"} <= binder.keys()
    assert {name: version for name, version in binder.items() if pinned.get(name) != version} == {}
    runtime = (REPO / "binder" / "runtime.txt").read_text().strip()
    assert runtime == "python-{}.{}".format(*sys.version_info[:2])
