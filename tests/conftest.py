"""Shared fixtures. ``import flowlab`` first: it selects Keras 2 before anything touches tf.keras."""

from pathlib import Path

import flowlab  # noqa: F401
import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def root() -> Path:
    return ROOT


@pytest.fixture(autouse=True)
def _seeded() -> None:
    flowlab.seed(0)

# Fixture notebooks (the grader's tiny lab) are graded by the tests, not collected by nbval: their
# check module lives on a path only the grader's kernel gets.
collect_ignore = ["fixtures"]
