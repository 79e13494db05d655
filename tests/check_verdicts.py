"""How the check tests read a verdict: exactly one line, ✔ or ✘, never the check's own failure."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def verdict(capsys: Any, fn: Callable[..., Any], *args: Any) -> str:
    """Run the check ``fn(*args)``; return the one line it printed (nothing else may be printed)."""
    fn(*args)
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1, out
    assert "the check itself failed" not in out[0], out[0]
    return out[0]


def passes(capsys: Any, fn: Callable[..., Any], *args: Any) -> None:
    line = verdict(capsys, fn, *args)
    assert line.startswith("✔"), line


def fails(capsys: Any, fn: Callable[..., Any], *args: Any, hint: str | tuple[str, ...] = ()) -> str:
    """The check fails, and its hint holds every word of ``hint`` (a string or a tuple of strings)."""
    line = verdict(capsys, fn, *args)
    assert line.startswith("✘"), line
    for word in (hint,) if isinstance(hint, str) else hint:
        assert word in line, line
    return line
