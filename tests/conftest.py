"""Shared fixtures. ``import flowlab`` first: it selects Keras 2 before anything touches tf.keras."""

from pathlib import Path

import pytest

import flowlab

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def root() -> Path:
    return ROOT


@pytest.fixture(autouse=True)
def _seeded() -> None:
    flowlab.seed(0)


@pytest.fixture(scope="session")
def grading_batch(tmp_path_factory):
    """Every real-lab submission the grading tests judge, graded in one ``grade`` call (tests/grading_batch.py)."""
    from grading_batch import grade_batch

    return grade_batch(tmp_path_factory.mktemp("grading_batch"))

# Fixture notebooks (the grader's tiny lab) are graded by the tests, not collected by nbval: their
# check module lives on a path only the grader's kernel gets.
collect_ignore = ["fixtures"]
