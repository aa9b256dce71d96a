"""Author–year labels in reference lists, as the chapters cite: [Vaswani et al., 2017].

sphinxcontrib-bibtex takes its labels from a pybtex label style (documented under
"Custom formatting, sorting, and labelling"); the default ``alpha`` style gives
[VSP+17]. This registers the pybtex plugins ``author_year`` (label style) and
``author_year`` (formatting style: pybtex's alpha, sorted by author, year and title,
with those labels); ``bibtex_default_style: author_year`` in ``_config.yml`` selects it,
and ``bibtex_reference_style: label`` makes the citations in the text show the same
labels, so that [He et al., 2016a] and [He et al., 2016b] stay apart in both places.
Names as in author-year styles: one author "Raschka", two "Glorot and Bengio",
three or more "Vaswani et al.".
"""
from __future__ import annotations

from collections import Counter
from string import ascii_lowercase

from pybtex.plugin import register_plugin
from pybtex.richtext import Text
from pybtex.style.formatting.alpha import Style as AlphaStyle
from pybtex.style.labels import BaseLabelStyle


def surname(person) -> str:
    """A person's surname with its particles ("van der Maaten"), LaTeX markup removed."""
    return Text.from_latex(" ".join(person.prelast_names + person.last_names)).render_as("text")


def author_year(entry) -> str:
    """'Vaswani et al., 2017' for an entry's authors (else editors) and year;
    ValueError when it has neither."""
    persons = entry.persons.get("author") or entry.persons.get("editor")
    if not persons:
        raise ValueError(f"references.bib: {entry.key} has no author or editor for its author-year label")
    names = [surname(p) for p in persons]
    who = names[0] if len(names) == 1 else " and ".join(names) if len(names) == 2 else f"{names[0]} et al."
    return f"{who}, {entry.fields['year']}"


class AuthorYearLabelStyle(BaseLabelStyle):
    def format_labels(self, sorted_entries):
        labels = [author_year(entry) for entry in sorted_entries]
        # Two works of one first author and year in one list become 2016a, 2016b.
        repeated = {label for label, n in Counter(labels).items() if n > 1}
        seen: Counter = Counter()
        for label in labels:
            if label in repeated:
                seen[label] += 1
                label += ascii_lowercase[seen[label] - 1]
            yield label


class AuthorYearStyle(AlphaStyle):
    default_label_style = "author_year"


def setup(app):
    register_plugin("pybtex.style.labels", "author_year", AuthorYearLabelStyle)
    register_plugin("pybtex.style.formatting", "author_year", AuthorYearStyle)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
