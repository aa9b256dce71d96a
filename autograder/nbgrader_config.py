# nbgrader settings of the course (loaded by ../nbgrader_config.py).
# `python -m autograder grade --out DIR` points the working folders and the
# gradebook at DIR on the command line; the defaults below are for plain
# nbgrader commands run from the repository root.
import os

from nbgrader.converters import Autograde
from nbgrader.preprocessors import Execute

c = get_config()  # noqa: F821

c.CourseDirectory.course_id = "attention-course"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "exercises"
c.CourseDirectory.submitted_directory = "_grading/submitted"
c.CourseDirectory.autograded_directory = "_grading/autograded"
c.CourseDirectory.feedback_directory = "_grading/feedback"
c.CourseDirectory.db_url = "sqlite:///_grading/gradebook.db"
# SQLite makes the file, not its folder: plain `nbgrader collect` on a fresh clone needs it.
os.makedirs("_grading", exist_ok=True)
# Only notebooks are released: a paired .md or a cache would publish solutions.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "*.md", "*.py"]

# Per-cell timeout (seconds) while autograding; training cells are short here.
c.Execute.timeout = 120
# A correct solution that triggers a Python warning must not lose the points:
# nbgrader scores any stderr output in a test cell as 0, so drop warning lines.
c.IgnorePattern.enabled = True
c.IgnorePattern.pattern = r"\w*Warning: "
# A deleted test cell is put back from the gradebook's master copy and graded.
c.OverwriteCells.add_missing_cells = True

# Learner output must not act in the pages the instructor opens: the autograded
# notebook (which the formgrader renders next to its own JavaScript) is made
# inert right after execution, by plain `nbgrader autograde` and the formgrader's
# button too (nbgrader's default steps, SanitizeOutputs inserted after Execute).
_steps = Autograde.class_traits()["autograde_preprocessors"].default()
_after = _steps.index(Execute) + 1
c.Autograde.autograde_preprocessors = [*_steps[:_after], "autograder.feedback.SanitizeOutputs", *_steps[_after:]]
# nbconvert's own cleaning of HTML outputs, in feedback pages and the formgrader
# alike (it misses the Markdown cells of nbgrader's templates: SanitizeOutputs).
c.HTMLExporter.sanitize_html = True

# Feedback shows the visible tests and the hidden tests' verdicts, never their
# code, and no learner content that could act: each page starts with a
# Content-Security-Policy that forbids script.
c.GenerateFeedback.exporter_class = "autograder.feedback.FeedbackExporter"
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "nbgrader.preprocessors.ClearHiddenTests",
    "autograder.feedback.CondenseTestTracebacks",
    "autograder.feedback.SanitizeOutputs",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]
# grades.csv of `nbgrader export`, as `python -m autograder grade` writes it:
# quoted, control characters escaped, no cell read as a formula.
c.ExportApp.plugin_class = "autograder.report.SafeCsvExportPlugin"

# The late policy of course.toml (also applied by `python -m autograder grade`).
from autograder.term import load as _load_term  # noqa: E402

c.LateSubmissionPlugin.penalty_method = _load_term().penalty_method

# `nbgrader zip_collect ASSIGNMENT` on a Canvas "Download Submissions" zip put in
# downloaded/<assignment>/archive/: its files are named
# NAME_[LATE_]USERID_SUBMISSIONID_NOTEBOOK.ipynb (NOTEBOOK-1.ipynb when resubmitted),
# and land in _grading/submitted/<USERID>/<assignment>/NOTEBOOK.ipynb. nbgrader
# matches the whole path. For Moodle ("Full Name_ID_assignsubmission_file_NOTEBOOK.ipynb"):
# r".*/[^/_]+_(?P<student_id>\d+)_assignsubmission_file_(?P<file_id>[^/]+?)(?: \(\d+\))?\.ipynb$"
c.FileNameCollectorPlugin.named_regexp = (
    r".*/[^/_]+_(?:LATE_)?(?P<student_id>\d+)_\d+_(?P<file_id>[^/]+?)(?:-\d+)?\.ipynb$")
