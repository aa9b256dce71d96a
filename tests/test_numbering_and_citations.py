"""What the built site numbers and labels: chapter N is book/NN_*, its figures and
equations read "Fig. N.k" and "(N.k)"; reference lists and citations in the text
carry the same author-year labels; the Start here page gives the pinned versions."""
import re
import sys

import pytest
from bs4 import BeautifulSoup

from autograder.course import REPO
from test_site import CHAPTERS, HTML, PAGES


def soup(path: str) -> BeautifulSoup:
    return BeautifulSoup((HTML / path).read_text(encoding="utf-8"), "html.parser")


def article(path: str):
    return soup(path).select_one("article.bd-article")


@pytest.mark.parametrize("path", PAGES)
def test_chapters_are_numbered_as_their_files(built, path):
    number = article(path).select_one("h1 .section-number")
    chapter = re.match(r"book/(\d\d)_", path)
    if chapter is None:  # front page, Start here, glossary, bibliography
        assert number is None, path
    else:
        assert number is not None and number.get_text(strip=True) == f"{int(chapter.group(1))}.", path


@pytest.mark.parametrize("path", CHAPTERS)
def test_figures_and_equations_are_numbered_per_chapter(built, path):
    n = int(re.match(r"book/(\d\d)_", path).group(1))
    page = article(path)
    figures = [e.get_text(strip=True) for e in page.select("figcaption .caption-number")]
    # an equation's number is its eqno span's text, before the "#" of its permalink
    equations = [e.contents[0].strip() for e in page.select("span.eqno")]
    assert figures == [f"Fig. {n}.{k}" for k in range(1, len(figures) + 1)], path
    assert equations == [f"({n}.{k})" for k in range(1, len(equations) + 1)], path


def test_chapter_3_starts_at_fig_3_1_and_equation_3_1(built):
    page = article("book/03_scaled_attention.html")
    assert page.select_one("figcaption .caption-number").get_text(strip=True) == "Fig. 3.1"
    assert page.select_one("span.eqno").contents[0].strip() == "(3.1)"


AUTHOR_YEAR = re.compile(r"[^\W\d][\w' -]*( and [^\W\d][\w' -]*| et al\.)?, \d{4}[a-z]?")


@pytest.mark.parametrize("path", PAGES)
def test_citations_and_reference_lists_use_the_same_author_year_labels(built, path):
    page = soup(path)
    labels = {c["id"]: c.select_one(".label").get_text(strip=True).strip("[]")
              for c in page.select("div.citation")}
    for label in labels.values():
        assert AUTHOR_YEAR.fullmatch(label), f"{path}: reference label {label!r} is not author-year"
    for a in page.select(".bibtex-citation a[href^='#']"):
        assert a.get_text(strip=True) == labels[a["href"][1:]], f"{path}: {a}"


@pytest.mark.parametrize("path, label, title", [
    ("book/03_scaled_attention.html", "Vaswani et al., 2017", "Attention is all you need"),
    ("book/03_scaled_attention.html", "Glorot and Bengio, 2010", "Understanding the difficulty"),
    ("book/03_scaled_attention.html", "Raschka, 2024", "Build a Large Language Model"),
    # two works of He et al. from 2016, told apart in the text and in the list
    ("book/07_residual.html", "He et al., 2016a", "Deep residual learning"),
    ("book/07_residual.html", "He et al., 2016b", "Identity mappings"),
])
def test_reference_label_names_its_work(built, path, label, title):
    entries = {c.select_one(".label").get_text(strip=True).strip("[]"): c.get_text(" ", strip=True)
               for c in soup(path).select("div.citation")}
    assert title in entries[label]


def test_start_here_gives_the_pinned_versions():
    text = (REPO / "book" / "start_here.md").read_text()
    pins = dict(line.split("==") for line in (REPO / "requirements.txt").read_text().split() if "==" in line)
    named = dict(re.findall(r"([A-Za-z][\w.-]*)==([\w.]+)", text))
    assert {"torch", "nbgrader", "jupyterlab", "notebook"} <= named.keys()
    assert {name: pins.get(name) for name in named} == named
    # the Python the course's environment runs
    assert f"Python {sys.version_info.major}.{sys.version_info.minor}" in text
    assert f"python{sys.version_info.major}.{sys.version_info.minor} -m venv" in text
