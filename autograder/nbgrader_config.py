# nbgrader settings of the course (loaded by ../nbgrader_config.py).
# `python -m autograder grade --out DIR` points the working folders and the
# gradebook at DIR on the command line; the defaults below are for plain
# nbgrader commands run from the repository root.
c = get_config()  # noqa: F821

c.CourseDirectory.course_id = "attention-course"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "exercises"
c.CourseDirectory.submitted_directory = "_grading/submitted"
c.CourseDirectory.autograded_directory = "_grading/autograded"
c.CourseDirectory.feedback_directory = "_grading/feedback"
c.CourseDirectory.db_url = "sqlite:///_grading/gradebook.db"
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

# Feedback shows the visible tests and the hidden tests' verdicts, never their code.
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "nbgrader.preprocessors.ClearHiddenTests",
    "autograder.feedback.CondenseTestTracebacks",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]
