"""The process a run or a sweep is: signals (Ctrl-C and stop signals, held and answered in one line) and phases
(where its CPU time goes). Imports nothing of sherlocked.
"""
