"""Graded checks for the labs: one module per lab, each function prints one verdict line.

See :mod:`flowlab.checks.core` for how a check is written and ``docs/notebooks.md`` for how check
cells are laid out in a notebook.
"""
