"""Read a submitted file as a Jupyter notebook, or say in one sentence why it is not one."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import nbformat

__all__ = ["InvalidSubmission", "MAX_BYTES", "read_submission", "lab_id"]

MAX_BYTES = 50 * 2**20  # an executed lab with figures is a few MB; more is not a lab


class InvalidSubmission(ValueError):
    """A submission that cannot be graded; the message is the reason the student reads."""


def _json_reason(err: json.JSONDecodeError, text: str) -> str:
    what = err.msg[0].lower() + err.msg[1:]
    what = what.removesuffix(" at").removesuffix(" starting")  # "Unterminated string starting at"
    truncated = what.startswith("unterminated") or err.pos >= len(text.rstrip()) - 1
    return (f"not a notebook: the file is not valid JSON ({what} at line {err.lineno}, column {err.colno}"
            + ("; is the file truncated?)" if truncated else ")"))


def read_submission(path: Path, notes: list[str] | None = None) -> nbformat.NotebookNode:
    """Parse and validate ``path``; raise :class:`InvalidSubmission` naming the problem.

    What nbformat warns about (cells without ids, ...) goes to ``notes`` and is re-issued as a
    warning that names the file."""
    try:
        size = path.stat().st_size
    except OSError as err:
        raise InvalidSubmission(f"cannot read the file: {err.strerror or err}") from None
    if size == 0:
        raise InvalidSubmission("the file is empty")
    if size > MAX_BYTES:
        raise InvalidSubmission(f"the file is {size / 2**20:.0f} MB; a lab notebook is at most {MAX_BYTES // 2**20} MB")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InvalidSubmission("not a notebook: the file is not UTF-8 text (a binary or a zip?)") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise InvalidSubmission(_json_reason(err, text)) from None
    if not isinstance(data, dict) or "cells" not in data or "nbformat" not in data:
        raise InvalidSubmission("not a notebook: the JSON has no `cells` and `nbformat` (is this a Jupyter .ipynb?)")
    if data.get("nbformat") != 4:
        raise InvalidSubmission(f"unsupported notebook format {data.get('nbformat')!r}: save it with Jupyter "
                                "(nbformat 4)")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            notebook = nbformat.reads(text, as_version=4)
    except Exception as err:  # noqa: BLE001 - nbformat raises many kinds; all mean "not readable"
        raise InvalidSubmission(f"not a readable notebook: {str(err).splitlines()[0]}") from None
    for said in dict.fromkeys((w.category, str(w.message).strip().splitlines()[0]) for w in caught):
        category, message = said
        if notes is not None:
            notes.append(f"nbformat: {message}")
        warnings.warn(f"{path}: {message}", category, stacklevel=2)
    for index, cell in enumerate(notebook.cells):
        if cell.get("cell_type") not in {"code", "markdown", "raw"} or not isinstance(cell.get("source"), str):
            raise InvalidSubmission(f"cell {index} is malformed (cell_type {cell.get('cell_type')!r})")
    return notebook


def lab_id(notebook: Any) -> str | None:
    """The lab a notebook says it is (``metadata.flowlab.lab``), if it says."""
    flowlab = notebook.get("metadata", {}).get("flowlab")
    lab = flowlab.get("lab") if isinstance(flowlab, dict) else None
    return lab if isinstance(lab, str) and lab else None
