"""nbgrader preprocessors that our grader adds to ``nbgrader autograde``."""
from nbgrader import utils
from nbgrader.preprocessors import ClearHiddenTests


class StripHiddenTests(ClearHiddenTests):
    """nbgrader's ``ClearHiddenTests``, run before execution on the test cells
    only, so that the learner's kernel executes no hidden test (nothing of them
    can be read from inside it); the trusted verdicts grade those cells.

    Test cells are put back from the gradebook by ``OverwriteCells``, so their
    markers are well formed; a learner's own cell quoting the markers is left
    alone instead of failing the run.
    """

    def preprocess_cell(self, cell, resources, index):
        if utils.is_grade(cell) and cell.cell_type == "code":
            self._remove_hidden_test_region(cell)
        return cell, resources
