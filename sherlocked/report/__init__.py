"""The report: a sweep's result.json files turned into the study's table, statistics, plots and mechanism.

    python -m sherlocked.report outputs/sweeps/demo

runs.py reads a sweep once; tables.py, significance.py, mechanism.py and plots.py build on it;
page.py writes the one page; cli.py writes every file. This file imports none of them, so no
module imports another through it. May import runtime/, spec/ and records/: no torch, so a report
is instant on a laptop or a login node; never sherlocked.training or sherlocked.sweep (a sweep's
end, sweep/finish.py, asks significance.answer for its last lines).
"""
