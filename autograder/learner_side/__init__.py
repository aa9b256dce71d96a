"""The only part of the grader that learner code can see: how the sandboxed
worker calls a learner's function or module and encodes its outputs as plain
data. No reference, known-mistake table or hidden test lives here."""
