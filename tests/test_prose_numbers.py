"""Every measured number in the book's prose comes from executed code.

A number with a decimal point or a percent sign in the Markdown prose of a page
must be glued from a code cell (myst-nb's ``{glue:text}`` role), so the text can
never drift from what the code prints. Numbers quoted from a paper are allowed
in a block (paragraph, list item, table, admonition) that cites it with a
``{cite:...}`` role. Code, inline code, math, roles and link targets are not prose.
"""
import re

import pytest
import yaml

from autograder.course import REPO

TOC = yaml.safe_load((REPO / "_toc.yml").read_text())
PAGES = sorted(p for p in (REPO / "book").glob("*.md") if p.stem != "bibliography")
# Fenced directives whose body is prose; every other fence (code cells, math,
# bibliography, plain code) is not.
PROSE_FENCES = {"admonition", "note", "tip", "hint", "important", "warning", "caution", "attention",
                "danger", "error", "seealso", "figure", "table", "dropdown", "margin", "sidebar",
                "epigraph", "topic"}
FENCE = re.compile(r"^(`{3,}|~{3,}|:{3,})\s*(\{([\w:-]+)\})?")
NOT_PROSE = [
    re.compile(r"\$\$.*?\$\$", re.S),                # display math
    re.compile(r"\{[\w:-]+\}`[^`]*`"),              # roles: {glue:text}`...`, {numref}`...`, {cite:p}`...`
    re.compile(r"`[^`]*`"),                         # inline code
    re.compile(r"(?<!\\)\$[^$\n]+\$"),              # inline math
    re.compile(r"\]\([^)]*\)"),                     # link targets
    re.compile(r"\b\d+\.\d+\.\d+\b|(?<=Python )\d+\.\d+"),   # versions (torch 2.13.0, Python 3.11)
]
MEASURED = re.compile(r"(?<![\w.])\d+(?:\.\d+)?\s?%|(?<![\w.])\d+\.\d+(?!\w|\.\d)")


def prose_blocks(text: str) -> list[tuple[int, str]]:
    """(first line number, text) of every prose block of a MyST page."""
    lines = text.split("\n")
    start = 0
    if lines and lines[0] == "---":                 # the jupytext/kernelspec header
        start = lines.index("---", 1) + 1
    blocks, current, first = [], [], 0
    fences: list[tuple[str, bool]] = []             # (fence marker, body is prose)

    def close():
        nonlocal current
        if current:
            blocks.append((first, "\n".join(current)))
        current = []

    for number, line in enumerate(lines[start:], start + 1):
        stripped = line.strip()
        if fences and stripped and set(stripped) == {fences[-1][0][0]} and len(stripped) >= len(fences[-1][0]):
            fences.pop()                            # the closing fence
            close()
            continue
        match = FENCE.match(stripped)
        if match and (not fences or fences[-1][1]):
            close()
            fences.append((match.group(1), match.group(3) in PROSE_FENCES))
            continue
        if fences and not fences[-1][1]:
            continue
        if not stripped or (fences and re.match(r"^:[\w-]+:", stripped)):
            close()
            continue
        if not current:
            first = number
        current.append(line)
    close()
    return blocks


def typed_numbers(text: str) -> list[str]:
    """Problems: decimal or percent numbers typed in prose blocks without a citation."""
    problems = []
    for number, block in prose_blocks(text):
        if "{cite" in block:
            continue
        for pattern in NOT_PROSE:
            block = pattern.sub(" ", block)
        problems += [f"line {number}: {m.group(0)!r} typed, not glued" for m in MEASURED.finditer(block)]
    return problems


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_numbers_in_prose_are_glued_from_code(page):
    assert typed_numbers(page.read_text(encoding="utf-8")) == []


def test_the_check_sees_typed_numbers_and_spares_the_rest():
    page = """---
kernelspec:
  name: python3
---
# Title

The loss fell to 0.92 and accuracy reached 94 %. It ends at 0.5.

The glued value {glue:text}`c01_loss:.2f` and `x = 0.5` and $p = 0.25$ are fine.

```{code-cell} ipython3
print(0.9268)
```

```{math}
\\sigma = 0.5
```

The paper reports 28.4 BLEU {cite:p}`c10-vaswani2017attention`.

:::{note}
A note with 3.5 typed.
:::

```{admonition} Notes vs. paper
:class: note
Half of 1.0 is 0.5 here.
```

torch 2.13.0 and [a link](https://example.org/v1.2/page) are not measurements.
"""
    assert typed_numbers(page) == [
        "line 7: '0.92' typed, not glued",
        "line 7: '94 %' typed, not glued",
        "line 7: '0.5' typed, not glued",
        "line 22: '3.5' typed, not glued",
        "line 27: '1.0' typed, not glued",
        "line 27: '0.5' typed, not glued",
    ]
