"""course.toml: the term's due dates and late policy."""
import datetime

import pytest
from nbgrader.api import Gradebook

from autograder.course import available_assignments
from autograder.term import TERM_FILE, TermError, apply_due_dates, load


def test_the_committed_course_file_is_valid():
    term = load(TERM_FILE, available_assignments())
    assert term.penalty_method in ("none", "zero")


def test_due_dates_are_read_in_utc(tmp_path):
    path = tmp_path / "course.toml"
    path.write_text('[late]\npenalty_method = "zero"\n[due]\n03_scaled_attention = 2026-12-07T23:59:00+01:00\n')
    term = load(path, ["03_scaled_attention"])
    assert term.penalty_method == "zero"
    assert term.due == {"03_scaled_attention": datetime.datetime(2026, 12, 7, 22, 59)}


@pytest.mark.parametrize("text, phrase", [
    ('[late]\npenalty_method = "half"\n', "penalty_method must be one of none, zero"),
    ('[due]\n03_scaled_attention = 2026-12-07T23:59:00\n', "with its time zone"),
    ('[due]\n03_scaled_attention = "next friday"\n', "with its time zone"),
    ('[due]\n99_unknown = 2026-12-07T23:59:00Z\n', "not an assignment of this course"),
    ('[due\n', "course.toml"),
])
def test_a_malformed_course_file_names_the_entry(tmp_path, text, phrase):
    path = tmp_path / "course.toml"
    path.write_text(text)
    with pytest.raises(TermError, match=phrase):
        load(path, ["03_scaled_attention"])


def test_due_dates_reach_the_gradebook_and_others_are_kept(tmp_path):
    url = f"sqlite:///{tmp_path / 'gradebook.db'}"
    with Gradebook(url) as gb:
        gb.add_assignment("02_qkv", duedate=datetime.datetime(2026, 11, 1, 12, 0))
    path = tmp_path / "course.toml"
    path.write_text('[due]\n03_scaled_attention = 2026-12-07T23:59:00Z\n')
    apply_due_dates(load(path), url, ["02_qkv", "03_scaled_attention"])
    with Gradebook(url) as gb:
        assert gb.find_assignment("03_scaled_attention").duedate == datetime.datetime(2026, 12, 7, 23, 59)
        assert gb.find_assignment("02_qkv").duedate == datetime.datetime(2026, 11, 1, 12, 0)
