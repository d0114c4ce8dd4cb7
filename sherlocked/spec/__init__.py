"""What a study's config means and must be, torch-free: config (what each key means, declared once: member-level
or not, part of a job's identity or not, in dir names or not), checks (what a config must be: one line naming a bad
value), activations and datasets (names, sizes, files on disk).

Imports nothing of sherlocked but itself (and sherlocked.runtime.atomic, to unpack a dataset's files whole).
"""
