"""Round two of the attack corpus graded by tests/test_attacks.py: the hostile
learners (:mod:`.learners`) and what a grading run leaves behind for them to
reach (:mod:`.evidence`)."""
