"""nbgrader preprocessors that our grader adds to ``nbgrader autograde``."""
from nbgrader import utils
from nbgrader.preprocessors import ClearHiddenTests, OverwriteCells
from traitlets import List, Unicode


class StripHiddenTests(ClearHiddenTests):
    """nbgrader's ``ClearHiddenTests`` on the test cells ``grade_ids`` (those a
    trusted check grades), run right after ``OverwriteCells`` in nbgrader's
    first pass, so that neither the notebook file in the kernel's folder nor
    the kernel holds any of their hidden tests; the trusted verdicts grade
    those cells. A plain nbgrader test
    cell keeps its hidden tests: nbgrader grades it in the kernel.

    Test cells are put back from the gradebook by ``OverwriteCells``, so their
    markers are well formed; a learner's own cell quoting the markers is left
    alone instead of failing the run.
    """

    grade_ids = List(Unicode(), help="the test cells a trusted check grades").tag(config=True)

    def preprocess_cell(self, cell, resources, index):
        if utils.is_grade(cell) and cell.cell_type == "code" and cell.metadata["nbgrader"]["grade_id"] in self.grade_ids:
            self._remove_hidden_test_region(cell)
        return cell, resources


class OverwriteCellsInOrder(OverwriteCells):
    """nbgrader's ``OverwriteCells`` (with ``add_missing_cells``), whose own
    ``add_missing_grade_cells`` raises KeyError when the cell before a missing
    one is missing too: a notebook made against an earlier release, before a
    whole exercise was added. This one puts each missing grade cell after the
    nearest earlier graded cell the notebook has (or first)."""

    def add_missing_grade_cells(self, nb, resources):
        source_nb = self.gradebook.find_notebook(self.notebook_id, self.assignment_id)
        order = [c.name for c in source_nb.source_cells]
        answers = {c.name for c in source_nb.solution_cells}
        for grade_cell in source_nb.grade_cells:
            present = [c.metadata["nbgrader"]["grade_id"] if utils.is_grade(c) or utils.is_solution(c) else None
                       for c in nb.cells]
            if grade_cell.name in present:
                continue
            self.log.warning("Missing grade cell %s encountered, adding to notebook", grade_cell.name)
            position = order.index(grade_cell.name)
            earlier = [i for i, name in enumerate(present) if name in order[:position]]
            cell = self.missing_cell_transform(source_nb.source_cells[position], grade_cell.max_score,
                                               is_solution=grade_cell.name in answers)
            nb.cells.insert(earlier[-1] + 1 if earlier else 0, cell)
        return nb, resources
