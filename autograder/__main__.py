"""Command line: ``python -m autograder release|grade`` (COURSE_SPEC.md)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .course import NOTEBOOKS, SOLUTIONS, available_assignments
from .grade import GradebookMismatch, UsageError, grade
from .intake import IntakeError
from .release import ReleaseError, release
from .sandbox import Limits
from .verify import plain_tests


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    rel = commands.add_parser("release", help="regenerate exercises/ from solutions/")
    rel.add_argument("assignments", nargs="*", metavar="ASSIGNMENT")
    gr = commands.add_parser("grade", help="autograde a class and write grades and feedback")
    gr.add_argument("submissions", nargs="?", type=Path, metavar="SUBMISSIONS",
                    help="<student_id>/<assignment_id>/<notebook>.ipynb folder or .zip, only ever read "
                         "(default: what `nbgrader collect` put in OUT/submitted, else the bundled demo class "
                         "into _demo_grading)")
    gr.add_argument("--out", type=Path,
                    help="output folder (default: _grading, or _demo_grading for the demo class, so that the demo "
                         "never enters the course's gradebook)")
    gr.add_argument("--assignment", action="append", dest="assignments", metavar="ID",
                    help="grade only this assignment (repeatable)")
    gr.add_argument("--student", action="append", dest="students", metavar="ID",
                    help="grade only this student's submissions (repeatable)")
    gr.add_argument("--workers", type=int, default=1, help="submissions graded at once (default: 1)")
    gr.add_argument("--limit", action="append", default=[], metavar="NAME=VALUE",
                    help="a resource limit for learner code (repeatable); defaults: "
                         + ", ".join(f"{k}={v}" for k, v in vars(Limits()).items()))
    gr.add_argument("--resume", action="store_true",
                    help="grade only the submissions without a result in OUT/grades_detail.csv "
                         "(or whose grading failed for the grader's own fault)")
    gr.add_argument("--unsandboxed", action="store_true",
                    help="run learner code without bubblewrap isolation (limits still apply)")
    args = parser.parse_args(argv)
    try:
        if args.command == "release":
            known = available_assignments()
            unknown = [a for a in args.assignments if a not in known]
            if unknown:
                parser.error(f"unknown assignment(s) {', '.join(unknown)}; known: {', '.join(known)}")
            release(args.assignments or known)
            print(f"released {', '.join(args.assignments or known)} into exercises/")
            for assignment in args.assignments or known:
                plain = plain_tests(SOLUTIONS / assignment / f"{NOTEBOOKS[assignment]}.ipynb")
                if plain:
                    print(f"warning: {assignment}: test cell(s) {', '.join(plain)} run no trusted check "
                          f"(autograder.checks): graded in the learner's kernel, as plain nbgrader grades them")
        else:
            try:
                limits = Limits.parse(args.limit)
            except ValueError as exc:
                parser.error(str(exc))
            collected = (args.out or Path("_grading")) / "submitted"  # where `nbgrader collect` puts them
            if args.submissions is None and collected.is_dir() and any(collected.iterdir()):
                args.submissions = collected
                print(f"grading what nbgrader collected in {collected}")
            args.out = args.out or Path("_grading" if args.submissions else "_demo_grading")
            outcomes = grade(args.submissions, args.out, args.assignments, args.workers, limits,
                             sandboxed=not args.unsandboxed, resume=args.resume, students=args.students)
            print(f"graded {len(outcomes)} submission(s); wrote {args.out}/grades.csv, "
                  f"{args.out}/grades_detail.csv and {args.out}/feedback/")
    except (UsageError, IntakeError) as exc:
        parser.error(str(exc))
    except ReleaseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except GradebookMismatch as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
