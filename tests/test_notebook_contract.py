"""Each notebook states exactly what is graded (issue 17): every attribute,
keyword argument and error that a test cell (its visible tests and its hidden
block's wrappers) or a trusted check reads or expects is named in the
notebook's Markdown or in COURSE_SPEC.md.

"Named" means written in code (backticks or a code block):

* an attribute by ``obj.name``, ``name = ...``, a method ``name(...)``, a string
  ``"name"``, or a span that is the bare name and not a parameter of a graded
  target (``num_heads`` names an argument of ``split_heads``, not ``self.num_heads``);
* a keyword argument anywhere in code;
* an error by the exercise's own Markdown or COURSE_SPEC.md's line for the
  target, with the argument its message must name.
"""
from __future__ import annotations

import ast
import importlib
import io
import re
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest
import torch
from nbgrader import utils

from autograder.checks.contract import SIGNATURES, parameters
from autograder.checks.core import make_inputs, state_seed, trusted_state
from autograder.course import NOTEBOOKS, REPO, SOLUTIONS
from autograder.learner_side.call import call_target

SPEC = REPO.parent / "shared" / "COURSE_SPEC.md"
MODULE_API = set(dir(torch.nn.Module))  # eval, parameters, state_dict, training, ...
STATE_READERS = {"named_parameters", "named_buffers", "parameters", "buffers", "state_dict"}
SPAN = re.compile(r"```[^\n]*\n(.*?)```|`([^`\n]+)`", re.S)


@dataclass
class Stated:
    """What a text names in code: attributes and every identifier."""

    attributes: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, text: str, params: set[str] = frozenset()) -> "Stated":
        """``params``: the graded targets' parameter names, which a bare span names as arguments."""
        stated, bare = cls(), set()
        for fenced, inline in SPAN.findall(text):
            span = fenced or inline
            tokens = _tokens(span)
            stated.names.update(t.string for t in tokens if t.type == tokenize.NAME)
            for i, t in enumerate(tokens):
                if t.type == tokenize.NAME and i and tokens[i - 1].string == ".":
                    stated.attributes.add(t.string)
                elif t.type == tokenize.STRING and re.fullmatch(r"[\"'][A-Za-z_]\w*[\"']", t.string):
                    stated.attributes.add(t.string[1:-1])
            if re.fullmatch(r"[A-Za-z_]\w*", span.strip()):
                bare.add(span.strip())
            called = re.match(r"\s*([A-Za-z_]\w*)\(", span)  # a method: `decode(tgt, memory)`
            if called:
                stated.attributes.add(called.group(1))
            assigned = re.match(r"\s*(?:self\.)?([A-Za-z_]\w*)\s*=[^=]", span)
            if assigned:
                stated.attributes.add(assigned.group(1))
        stated.attributes |= bare - params
        return stated


def _tokens(code: str) -> list[tokenize.TokenInfo]:
    try:
        return list(tokenize.generate_tokens(io.StringIO(code).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return [tokenize.TokenInfo(tokenize.NAME, w, (0, 0), (0, 0), "") for w in re.findall(r"[A-Za-z_]\w*", code)]


@dataclass(frozen=True)
class Read:
    """One thing a test relies on: kind is "attribute", "keyword" or "error"."""

    kind: str
    name: str
    target: str
    where: str
    argument: str = ""  # for an error: the name its message must contain


def _graded_names(nb) -> dict[str, str]:
    """Target name -> the Markdown of its exercise (the cells since the previous solution cell)."""
    targets, text = {}, []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            text.append(cell.source)
        elif utils.is_solution(cell):
            for node in ast.parse(cell.source).body:
                if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                    targets[node.name] = "\n".join(text)
            text = []
    return targets


def _is_learner_object(node, objects: set[str], classes: set[str]) -> bool:
    """A module of the learner's: a name bound to one, a constructor call, or .eval()/.train() of one."""
    if isinstance(node, ast.Name):
        return node.id in objects
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Name):
            return func.id in classes
        if isinstance(func, ast.Attribute) and func.attr in {"eval", "train", "to", "float"}:
            return _is_learner_object(func.value, objects, classes)
    return False


def _class_of(node, objects: dict[str, str], classes: set[str]) -> str:
    while isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        node = node.func.value
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        return node.func.id
    return objects.get(node.id, "") if isinstance(node, ast.Name) else ""


def cell_reads(source: str, targets: set[str], classes: set[str], where: str) -> list[Read]:
    """What a test cell's code reads of the learner's code."""
    tree = ast.parse(source)
    objects: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and _is_learner_object(node.value, set(objects), classes):
            for name in node.targets:
                if isinstance(name, ast.Name):
                    objects[name.id] = _class_of(node.value, objects, classes)
    reads = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr not in MODULE_API \
                and _is_learner_object(node.value, set(objects), classes):
            reads.append(Read("attribute", node.attr, _class_of(node.value, objects, classes), where))
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else ""
            if name in targets or name in objects:
                reads += [Read("keyword", k.arg, objects.get(name, name), where) for k in node.keywords if k.arg]
        elif isinstance(node, ast.Compare) and any(
                isinstance(n, ast.Attribute) and n.attr in STATE_READERS for n in ast.walk(node)):
            reads += [Read("attribute", n.value.split(".")[0], "", where) for n in ast.walk(node)
                      if isinstance(n, ast.Constant) and isinstance(n.value, str)
                      and re.fullmatch(r"[A-Za-z_]\w*(\.\w+)*", n.value)]
        elif isinstance(node, ast.Try):
            called = {n.func.id for n in ast.walk(ast.Module(node.body, [])) if isinstance(n, ast.Call)
                      and isinstance(n.func, ast.Name) and n.func.id in targets}
            for handler in node.handlers:
                if isinstance(handler.type, ast.Name) and handler.type.id not in {"RuntimeError", "Exception"}:
                    reads += [Read("error", handler.type.id, t, where) for t in called]
    return reads


class _Recording(dict):
    """A state dict that remembers which keys a reference reads."""

    def __init__(self, *args):
        super().__init__(*args)
        self.read: set[str] = set()

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)

    def __contains__(self, key):
        self.read.add(key)
        return super().__contains__(key)


def check_reads(check, target, wrapper: bool) -> list[Read]:
    """What a trusted check expects: keyword inputs and constructor arguments, errors,
    an attribute of a wrapper target, and the state entries its references read."""
    where, name = f"check {check.name}", check.target.split("(")[0]
    wrapper = wrapper or check.args == ()  # a check's own wrapper, called by keyword (Check.args)
    # a wrapper of the hidden block (a lambda) takes the check's inputs by keyword; the learner's code does not
    args, init_args = check.positional()
    reads = [Read("attribute", check.target.rsplit(".", 1)[1], name, where)] if "(...)." in check.target else []
    for case in check.cases:
        inputs = make_inputs(case)
        reads += [Read("keyword", k, name, where) for k in inputs if k not in args and not wrapper]
        reads += [Read("keyword", k, name, where) for k in (case.init or {}) if k not in init_args]
        if case.raises:
            reads.append(Read("error", case.raises, name, where, case.error_names))
        elif check.kind == "module" and case.reference is not None:
            seed = state_seed(check, case)
            _, state = call_target(check.kind, target, inputs, case.init, case.init_seed, case.mode, seed,
                                   args, init_args)[:2]
            recording = _Recording(trusted_state(state, seed) if seed is not None else state)
            try:
                case.reference(recording, **inputs)
            except Exception:
                pass  # a reference that needs more than the state still tells what it read
            reads += [Read("attribute", key.split(".")[0], name, where) for key in recording.read]
    return reads


def notebook_reads(nb) -> list[Read]:
    """Everything the test cells and the trusted checks they run read of ``nb``'s answers."""
    sections = _graded_names(nb)
    namespace: dict = {}
    for cell in nb.cells:  # the answers' definitions and imports, nothing that trains or plots
        if cell.cell_type == "code" and not utils.is_grade(cell):
            body = [n for n in ast.parse(cell.source).body
                    if isinstance(n, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef))]
            exec(compile(ast.Module(body, []), "<answer>", "exec"), namespace)
    classes = {t for t in sections if isinstance(namespace.get(t), type)}
    reads = []
    for cell in nb.cells:
        if not utils.is_grade(cell) or cell.cell_type != "code":
            continue
        where = f"test cell {cell.metadata.nbgrader['grade_id']}"
        reads += cell_reads(cell.source, set(sections), classes, where)
        for call in ast.walk(ast.parse(cell.source)):
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "run":
                module, check = ast.unparse(call.args[0]).split(".")
                module = re.search(rf"(\w+) as {module}\b", cell.source).group(1)
                imports = [n for n in ast.parse(cell.source).body if isinstance(n, ast.ImportFrom)]
                exec(compile(ast.Module(imports, []), "<imports>", "exec"), namespace)
                target = eval(compile(ast.Expression(call.args[1]), "<target>", "eval"), namespace)
                wrapper = isinstance(call.args[1], ast.Lambda)
                reads += check_reads(getattr(importlib.import_module(f"autograder.checks.{module}"), check), target, wrapper)
    return reads


def _spec_line(spec: str, target: str) -> str:
    return "\n".join(line for line in spec.splitlines() if line.startswith(f"- `{target}("))


def gaps(nb, spec: str) -> list[str]:
    """What the tests of ``nb`` rely on that neither its Markdown nor ``spec`` names."""
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    sections = _graded_names(nb)
    params = {p for t in SIGNATURES if t.split(".")[0] in sections for p in sum(parameters(SIGNATURES[t]), ())}
    stated = Stated.of(markdown, params)
    by_spec = Stated.of(spec, {p for t in SIGNATURES for p in sum(parameters(SIGNATURES[t]), ())})
    found = set()
    for read in notebook_reads(nb):
        if read.kind == "attribute":
            ok = read.name in stated.attributes | by_spec.attributes
        elif read.kind == "keyword":
            ok = read.name in stated.names | by_spec.names
        else:
            text = sections.get(read.target, "") + "\n" + _spec_line(spec, read.target)
            ok = read.name in Stated.of(text).names and read.argument in Stated.of(text).names | {""}
        if not ok:
            found.add(f"{read.where} relies on the {read.kind} {read.name!r}"
                      + (f" of {read.target}" if read.target else "")
                      + (f" naming {read.argument!r}" if read.argument else "")
                      + ", which neither the notebook's Markdown nor COURSE_SPEC.md names")
    return sorted(found)


def _spec() -> str:
    if not SPEC.exists():
        pytest.skip(f"COURSE_SPEC.md is not beside the repository ({SPEC})")
    return SPEC.read_text()


def _solution(assignment: str):
    return nbformat.read(SOLUTIONS / assignment / f"{NOTEBOOKS[assignment]}.ipynb", as_version=4)


@pytest.mark.parametrize("assignment", sorted(NOTEBOOKS))
def test_what_is_graded_is_stated(assignment):
    assert gaps(_solution(assignment), _spec()) == []


def test_an_unstated_attribute_is_caught():
    """A visible test reading ``self.num_heads``, which only names an argument in the text (the bug of issue 17)."""
    nb = _solution("05_multi_head")
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "test_mha_shapes")
    cell.source = cell.source.replace("x = torch.randn(3, 5, 8)\n",
                                      "x = torch.randn(3, 5, 8)\nassert mha.num_heads == 2\n")
    assert gaps(nb, _spec()) == ["test cell test_mha_shapes relies on the attribute 'num_heads' of "
                                 "MultiHeadAttention, which neither the notebook's Markdown nor COURSE_SPEC.md names"]


def test_an_unstated_error_is_caught():
    """A trusted check expecting the ValueError of split_heads, with the text and the spec silent about it."""
    nb = _solution("05_multi_head")
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = cell.source.replace("Raise `ValueError`", "Raise an error")
    spec = _spec().replace("; `ValueError` if not divisible", "")
    assert gaps(nb, spec) == [
        "check split_heads_values relies on the error 'ValueError' of split_heads naming 'num_heads', which "
        "neither the notebook's Markdown nor COURSE_SPEC.md names",
        "test cell test_split_heads relies on the error 'ValueError' of split_heads, which neither the "
        "notebook's Markdown nor COURSE_SPEC.md names"]


def test_an_unstated_state_entry_is_caught():
    """A check whose reference reads a parameter the text never names (W_o renamed in the text)."""
    nb = _solution("05_multi_head")
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = cell.source.replace("`W_o`", "the output layer")
    spec = _spec().replace("`W_o`", "the output layer")
    assert any("check mha_matches_builtin relies on the attribute 'W_o'" in gap for gap in gaps(nb, spec))
