"""The strict book build (the README's `make book`) and what chapter 3 shows."""
import html
import re

import pytest

from autograder.course import REPO

PAGE = REPO / "_build" / "html" / "book" / "03_scaled_attention.html"


def _text(page):
    return html.unescape(re.sub(r"<[^>]+>", "", page.read_text()))


def test_strict_build_succeeds(built):
    # -W turns any Sphinx warning, and raise_on_error any failing cell, into a failure.
    assert "build succeeded." in built.stdout


@pytest.mark.parametrize("numbers", [
    "0.4306, 1.4551",                                      # query_2
    "1.2705, 1.8524, 1.8111, 1.0795, 0.5577, 1.5440",      # scores of x^2
    "0.1500, 0.2264, 0.2199, 0.1311, 0.0906, 0.1820",      # weights
    "0.3061, 0.8210",                                      # context_2
    "0.2996, 0.8053",                                      # SelfAttention_v1 first row
    "-0.0739, 0.0713",                                     # SelfAttention_v2 first row
])
def test_chapter_3_shows_the_seed_numbers(built, numbers):
    text = re.sub(r"\s+", " ", _text(PAGE))
    assert numbers in text


def test_chapter_3_links_the_exercise_and_has_figures(built):
    page = PAGE.read_text()
    assert "scaled_attention.ipynb" in page
    assert len(re.findall(r"<img [^>]*alt=\"[^\"]+\"", page)) >= 4
    assert "Vaswani" in page


def test_only_toc_pages_are_built(built):
    built_pages = {p.relative_to(REPO / "_build" / "html").as_posix()
                   for p in (REPO / "_build" / "html").rglob("*.html")}
    assert not any(p.startswith(("exercises/", "solutions/", "README", "tests/", "autograder/"))
                   for p in built_pages), built_pages


@pytest.mark.parametrize("chapter", sorted((REPO / "book").glob("[01][0-9]_*.md")), ids=lambda p: p.stem)
def test_prerequisites_link_the_chapters_they_name(chapter):
    """Every chapter a Prerequisites section names is a link to that chapter's page."""
    text = chapter.read_text(encoding="utf-8")
    section = text.split("\n## Prerequisites", 1)[1].split("\n## ", 1)[0] if "\n## Prerequisites" in text else ""
    links = re.findall(r"\[Chapter (\d+): [^\]]+\]\((\d\d)_\w+\.md\)", section)
    assert all(int(n) == int(f) for n, f in links), links
    assert len(re.findall(r"[Cc]hapter \d+", section)) == len(links)
