"""Checks made from outside the kernel, after it ran, that what graded it is what was shipped.

* The **grading code on disk** (the flowlab package and the folders on ``PYTHONPATH``, where a lab's
  check module lives): hashed once when the batch starts and again after every run.  The sandbox
  mounts them read-only, so a change means the sandbox was off or broken; the submission whose run
  saw the change is flagged, and so is every later one (they ran against the changed checks).
* The **cells that ran**: pytest reports the SHA-256 of each source it sent to the kernel; every one
  must be the assembled cell's (the solution's locked and check cells, the student's answers).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from flowlab.grading.sandbox import _package_dirs

__all__ = ["watched_folders", "digest", "changed_files", "cells_that_differ"]

MAX_FILES = 5000  # a PYTHONPATH folder with more Python files than this is hashed in part


def watched_folders(env: dict[str, str] | None = None) -> list[Path]:
    env = os.environ if env is None else env
    folders = list(_package_dirs())
    folders += [Path(p) for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    unique: list[Path] = []
    for folder in folders:
        try:
            folder = folder.resolve()
        except OSError:
            continue
        if folder.is_dir() and folder not in unique:
            unique.append(folder)
    return unique


def digest(folders: list[Path]) -> dict[str, str]:
    """Path -> SHA-256 of every Python file under ``folders`` (``__pycache__`` aside)."""
    found: dict[str, str] = {}
    for folder in folders:
        for root, dirs, files in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if d not in {"__pycache__", ".git", ".ipynb_checkpoints"})
            for name in sorted(files):
                if not name.endswith(".py") or len(found) >= MAX_FILES:
                    continue
                path = os.path.join(root, name)
                try:
                    with open(path, "rb") as handle:
                        found[path] = hashlib.sha256(handle.read()).hexdigest()
                except OSError:
                    found[path] = "unreadable"
    return found


def changed_files(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))


def cells_that_differ(plan: list[Any], records: dict[int, dict[str, Any]]) -> list[str]:
    """Labels of the cells whose source, as pytest sent it, is not the assembled one."""
    differ = []
    for number, cell in enumerate(plan):
        record = records.get(number)
        sent = record.get("source_sha") if record else None
        if sent and cell.source_sha and sent != cell.source_sha:
            differ.append(cell.label)
    return differ
