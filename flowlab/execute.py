"""Execute lab notebooks headless (nbclient), in fast or full mode, and save their figures."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nbformat

__all__ = ["NotebookError", "execute_notebook", "save_figures"]


class NotebookError(RuntimeError):
    """A notebook could not be read or a cell failed while it ran."""


@contextmanager
def _environment(**values: str) -> Iterator[None]:
    # The kernel inherits this process's environment: that is how fast mode reaches it.
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def execute_notebook(
    path: Path | str, *, fast: bool = False, timeout: int = 1800, kernel_name: str = "python3"
) -> nbformat.NotebookNode:
    """Run every cell of the notebook at ``path`` (working directory: its folder); return it executed."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    path = Path(path)
    try:
        notebook = nbformat.read(path, as_version=4)
    except FileNotFoundError:
        raise NotebookError(f"{path}: no such notebook") from None
    except Exception as err:  # noqa: BLE001 - any parse failure means the same to the user
        raise NotebookError(f"{path}: not a readable Jupyter notebook ({err})") from None
    client = NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name=kernel_name,
        resources={"metadata": {"path": str(path.parent.resolve())}},
        # The kernel's own start-up warnings (ipykernel's "running over TCP without encryption" on a
        # local loopback socket) are not the notebook's output; keep the terminal quiet.
        extra_arguments=["--IPKernelApp.log_level=ERROR"],
    )
    with _environment(FLOWLAB_FAST="1" if fast else "0", TF_CPP_MIN_LOG_LEVEL="3"):
        try:
            client.execute()
        except CellExecutionError as err:
            raise NotebookError(f"{path}: a cell failed\n{err}") from None
    return notebook


def save_figures(notebook: nbformat.NotebookNode, folder: Path | str, stem: str) -> list[Path]:
    """Write every PNG the notebook displayed to ``folder/stem-NN.png``; return the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            png = output.get("data", {}).get("image/png")
            if png:
                target = folder / f"{stem}-{len(written) + 1:02d}.png"
                target.write_bytes(base64.b64decode(png))
                written.append(target)
    return written
