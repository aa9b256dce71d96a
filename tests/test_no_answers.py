"""The chapters teach; the exercises are where a graded answer comes together.

No code cell of a chapter may define a function (or a class's ``forward``, or a
whole class) that is a graded solution up to identifier names, docstrings,
comments, type annotations, argument checks (``assert``, ``raise``, ``if ...:
raise``) and formatting. The solutions are the nbgrader source notebooks'
solution cells; the comparison is of normalised ASTs.
"""
import ast
import re

import jupytext
import nbformat
import pytest

from autograder.course import REPO

CHAPTERS = sorted((REPO / "book").glob("[0-9][0-9]_*.md"))


class _Normalise(ast.NodeTransformer):
    """Names become v0, v1, ... in order of first use; what does not change the
    computation (docstrings, annotations, argument checks) is dropped."""

    def __init__(self):
        self.names: dict[str, str] = {}

    def _name(self, name: str) -> str:
        return self.names.setdefault(name, f"v{len(self.names)}")

    def _body(self, body: list[ast.stmt]) -> list[ast.stmt]:
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            body = body[1:]
        checks = (ast.Assert, ast.Raise)
        body = [s for s in body if not isinstance(s, checks) and not (
            isinstance(s, ast.If) and not s.orelse and all(isinstance(b, checks) for b in s.body))]
        return body or [ast.Pass()]

    def visit_FunctionDef(self, node):
        node.name = self._name(node.name)
        node.returns, node.decorator_list = None, []
        node.body = self._body(node.body)
        self.generic_visit(node)
        return node

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node):
        node.name = self._name(node.name)
        node.body = self._body(node.body)
        self.generic_visit(node)
        return node

    def visit_arg(self, node):
        node.arg, node.annotation = self._name(node.arg), None
        return node

    def visit_Name(self, node):
        node.id = self._name(node.id)
        return node

    def visit_Attribute(self, node):
        self.generic_visit(node)
        if isinstance(node.value, ast.Name) and node.value.id == self.names.get("self"):
            node.attr = self._name("self." + node.attr)     # the module's own attributes
        return node

    def visit_AnnAssign(self, node):
        self.generic_visit(node)
        return ast.Assign(targets=[node.target], value=node.value or ast.Constant(None), lineno=node.lineno)


def shape(node: ast.AST) -> str:
    """The normalised AST of one definition, independent of its names."""
    return ast.dump(_Normalise().visit(ast.parse(ast.unparse(node)).body[0]), annotate_fields=False)


def definitions(source: str) -> list[ast.AST]:
    """Every function and class defined in ``source``, at any depth, and each class's forward."""
    source = "\n".join("" if re.match(r"\s*[%!]", line) else line for line in source.split("\n"))
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found.append(node)
    return found


def graded_shapes() -> dict[str, str]:
    """Normalised AST -> "assignment: name" of every graded solution definition."""
    shapes = {}
    for path in sorted((REPO / "solutions").glob("*/*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type != "code" or not cell.metadata.get("nbgrader", {}).get("solution"):
                continue
            for node in ast.parse(cell.source).body:
                if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                    where = f"{path.parent.name}: {node.name}"
                    shapes[shape(node)] = where
                    for method in node.body if isinstance(node, ast.ClassDef) else []:
                        if isinstance(method, ast.FunctionDef) and method.name == "forward":
                            shapes[shape(method)] = f"{where}.forward"
    return shapes


GRADED = graded_shapes()


def copied_answers(cells: list[str]) -> list[str]:
    """Chapter definitions that equal a graded solution, as 'name = graded'."""
    return [f"{node.name} = {GRADED[shape(node)]}"
            for source in cells for node in definitions(source) if shape(node) in GRADED]


def test_every_assignment_has_graded_definitions():
    assert {where.split(":")[0] for where in GRADED.values()} == \
        {p.name for p in (REPO / "solutions").iterdir() if p.is_dir()}


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_shows_no_graded_answer(chapter):
    cells = [c.source for c in jupytext.read(chapter).cells if c.cell_type == "code"]
    assert copied_answers(cells) == []


def test_the_comparison_sees_through_names_docstrings_checks_and_formatting():
    solution = next(c.source for c in nbformat.read(REPO / "solutions/05_multi_head/multi_head.ipynb",
                                                     as_version=4).cells
                    if c.metadata.get("nbgrader", {}).get("grade_id") == "merge_heads")
    disguised = '''
def join_heads(tensor):
    # heads back side by side
    assert tensor.dim() == 4, "four axes"
    batch, heads, length, width = tensor.shape
    return (tensor
            .transpose(1, 2)
            .reshape(batch, length, heads * width))
'''
    assert copied_answers([solution]) == ["merge_heads = 05_multi_head: merge_heads"]
    assert copied_answers([disguised]) == ["join_heads = 05_multi_head: merge_heads"]
    # a different computation of the same result is a variant, not a copy
    assert copied_answers([disguised.replace(".transpose(1, 2)", ".permute(0, 2, 1, 3)")]) == []
