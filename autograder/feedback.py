"""An nbgrader preprocessor for feedback that never shows hidden test code.

nbgrader's own ``ClearHiddenTests`` removes the hidden block from a test cell's
source, but a failing test's traceback still quotes the lines that raised,
hidden ones included. :class:`CondenseTestTracebacks` keeps only
``ExceptionName: message`` for errors in graded test cells; the check library
writes its messages to be read on their own.
"""
from nbconvert.preprocessors import Preprocessor
from nbgrader import utils
from traitlets import Bool


class CondenseTestTracebacks(Preprocessor):
    """Replace each error traceback of a grade (test) cell by its last line."""

    enabled = Bool(True)  # nbconvert's preprocessors are off by default

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code" and utils.is_grade(cell) and not utils.is_solution(cell):
            for output in cell.get("outputs", []):
                if output.output_type == "error":
                    output.traceback = [f"{output.ename}: {output.evalue}"]
        return cell, resources
