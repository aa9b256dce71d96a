# nbgrader reads this file from the course directory, the repository root, so
# that plain nbgrader commands (formgrader, export, db) work here too.
c = get_config()  # noqa: F821 (provided by traitlets)
load_subconfig("autograder/nbgrader_config.py")  # noqa: F821
