"""Does a graded function call the PyTorch built-in it re-implements?

COURSE_SPEC.md: "A graded function must not call the PyTorch built-in it
re-implements". Running the learner's code cannot tell (their process can
patch anything), so this reads the code itself, in the grader's process:

* the learner's code cells are parsed (IPython syntax turned into Python
  first), and from the graded target every top-level function, class and
  assignment it refers to by name is followed, transitively;
* in that reachable code, a reference to a built-in of the target
  (:data:`.checks.contract.BUILTINS`) is a **use**: an attribute chain rooted at
  an import of ``torch`` (``F.layer_norm``, ``torch.nn.functional.layer_norm``,
  ``torch.ops.aten.layer_norm``, an alias ``ln = F.layer_norm``), a name
  imported from ``torch`` (``from torch.nn.functional import layer_norm as
  ln``), a base class, or the built-in's name as a string (``getattr(F,
  "layer_norm")``); for :func:`broadcast_matmul`, also the ``@`` operator and
  tensor methods such as ``.matmul``;
* code that could reach anything by a name computed at run time (``getattr``
  with a computed name, ``exec``, ``eval``, ``__import__``, ``importlib``,
  ``globals()``, ``__dict__``, ``torch.ops`` or ``torch._C`` without a readable
  name, monkeypatching ``torch`` at top level, a target that no ``def`` or
  ``class`` defines) cannot be decided: it is **unsure**, and a person
  should review the cell.

What this proves: no reachable code *names* the built-in. It cannot prove that
obfuscated code (computed names, code objects, native extensions) does not
reach it; such code is flagged for review instead of being passed silently.
"""
from __future__ import annotations

import ast
import threading
from dataclasses import dataclass

from .checks.contract import BUILTINS, MATMUL

ROOTS = ("torch", "torchvision")
# CPython 3.11's parser is not safe in two threads at once ("SystemError: AST
# constructor recursion depth mismatch"), and worker slots verify in threads.
_PARSING = threading.Lock()
DYNAMIC_CALLS = {"exec", "eval", "compile", "__import__", "globals", "vars", "locals", "setattr", "delattr"}
DYNAMIC_NAMES = {"importlib", "ctypes", "marshal", "pickle", "dill", "cloudpickle", "operator", "builtins", "sys"}
DYNAMIC_ATTRS = {"__dict__", "__getattribute__", "__code__", "__globals__", "__builtins__", "modules",
                 "FunctionType", "CodeType", "attrgetter", "methodcaller"}


@dataclass(frozen=True)
class Finding:
    """``kind`` is "uses" (the built-in is called) or "unsure" (cannot be decided)."""

    kind: str
    message: str


def inspect(cells: list[str], target: str) -> Finding | None:
    """Whether the code ``cells`` give ``target`` (a graded function or class
    named in :data:`BUILTINS`) uses the built-in it re-implements; None when
    no reachable code names it and nothing is undecidable."""
    forbidden = BUILTINS.get(target, ())
    if not forbidden:
        return None
    names = {f.rsplit(".", 1)[-1] for f in forbidden}
    code = _Code(cells)
    if code.unparsable:
        return Finding("unsure", f"a code cell could not be read ({code.unparsable}), so the grader cannot "
                                 f"tell whether {target} calls {_list(forbidden)}")
    if target not in code.defs:
        return Finding("unsure", f"{target} is not defined by a def or class statement the grader can read, "
                                 f"so it cannot tell whether it calls {_list(forbidden)}")
    unsure = code.monkeypatch
    for node in code.reachable(target):
        for sub in ast.walk(node):
            used = code.uses(sub, names, matmul=target in MATMUL)
            if used:
                return Finding("uses", f"{target} uses {used} (line {sub.lineno} of its cell), the PyTorch "
                                       f"built-in it re-implements: COURSE_SPEC.md asks for your own "
                                       f"implementation from tensor operations")
            unsure = unsure or code.dynamic(sub)
    if unsure:
        return Finding("unsure", f"the grader cannot tell whether {target} calls {_list(forbidden)}: {unsure}")
    return None


def _list(forbidden) -> str:
    return " or ".join(forbidden)


class _Code:
    """The learner's cells as one module: imports, top-level definitions."""

    def __init__(self, cells: list[str]):
        from IPython.core.inputtransformer2 import TransformerManager

        self.unparsable = ""
        self.defs: dict[str, list[ast.AST]] = {}
        self.aliases: dict[str, str] = {}   # local name -> dotted torch path
        self.monkeypatch = ""
        trees = []
        for source in cells:
            try:
                with _PARSING:
                    trees.append(ast.parse(TransformerManager().transform_cell(source)))
            except (SyntaxError, ValueError) as exc:
                self.unparsable = f"{type(exc).__name__}: {exc}"
        for tree in trees:
            for node in ast.walk(tree):
                self._import(node)
            for node in tree.body:
                self._top_level(node)

    def _import(self, node) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in ROOTS:
                    local = alias.asname or alias.name.split(".")[0]
                    self.aliases[local] = alias.name if alias.asname else local
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in ROOTS:
            for alias in node.names:
                self.aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"

    def _top_level(self, node) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            self.defs.setdefault(node.name, []).append(node)
            self.aliases.pop(node.name, None)  # a def shadows an earlier import of the same name
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        self.defs.setdefault(name.id, []).append(node)
                        path = self.path(node.value) if node.value is not None else None
                        if path:
                            self.aliases[name.id] = path
                    elif isinstance(name, ast.Attribute) and (self.path(name) or "").startswith(ROOTS):
                        self.monkeypatch = f"line {node.lineno} of a cell replaces {self.path(name)}"

    def path(self, node) -> str | None:
        """The dotted torch path an expression names (``F.layer_norm`` ->
        ``torch.nn.functional.layer_norm``), or None."""
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if isinstance(node, ast.Name) and node.id in self.aliases:
            return ".".join([self.aliases[node.id], *reversed(parts)])
        return None

    def reachable(self, target: str) -> list[ast.AST]:
        """The definitions ``target`` refers to by name, transitively (itself included)."""
        seen, todo, nodes = {target}, [target], []
        while todo:
            for node in self.defs.get(todo.pop(), []):
                nodes.append(node)
                for sub in ast.walk(node):
                    if isinstance(sub, ast.Name) and sub.id in self.defs and sub.id not in seen:
                        seen.add(sub.id)
                        todo.append(sub.id)
        return nodes

    def uses(self, node, names: set[str], matmul: bool) -> str:
        """What ``node`` uses of the built-ins called ``names`` ("" for nothing)."""
        if isinstance(node, (ast.Attribute, ast.Name)):
            path = self.path(node)
            if path and path.rsplit(".", 1)[-1] in names:
                return path
            if matmul and isinstance(node, ast.Attribute) and node.attr in names:
                return f"the tensor method .{node.attr}"
        if matmul and isinstance(node, (ast.BinOp, ast.AugAssign)) and isinstance(node.op, ast.MatMult):
            return "the @ operator"
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names:
            return f"the built-in named by the string {node.value!r}"
        return ""

    def dynamic(self, node) -> str:
        """Why ``node`` could reach code by a name computed at run time ("" if it cannot)."""
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            name = node.func.id
            if name in DYNAMIC_CALLS:
                return f"it calls {name}() (line {node.lineno})"
            if name == "getattr" and not (len(node.args) > 1 and isinstance(node.args[1], ast.Constant)):
                return f"it calls getattr with a computed name (line {node.lineno})"
        if isinstance(node, ast.Name) and node.id in DYNAMIC_NAMES:
            return f"it uses {node.id} (line {node.lineno})"
        if isinstance(node, ast.Attribute):
            path = self.path(node) or ""
            if node.attr in DYNAMIC_ATTRS or path.startswith(("torch.ops", "torch._C")):
                return f"it uses {path or '.' + node.attr} (line {node.lineno})"
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if any(m.split(".")[0] in DYNAMIC_NAMES for m in modules):
                return f"it imports {', '.join(modules)} (line {node.lineno})"
        return ""
