"""Bound over ``autograder/checks/__init__.py`` inside the sandbox: the check
library (references, known mistakes, hidden tests) stays with the grader."""
raise ImportError("autograder.checks, the course's grader, is not available to notebook code while it is "
                  "graded: your code must work without it (the visible tests show what is checked)")
