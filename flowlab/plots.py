"""The figures the labs draw: a density as a heat map, samples, a loss curve. Titled and labelled."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf

from flowlab.validation import integer

__all__ = ["density_grid", "plot_density", "plot_samples", "plot_loss", "loss_limits"]


def density_grid(
    distribution: Any,
    xlim: Sequence[float] = (-3.0, 3.0),
    ylim: Sequence[float] = (-3.0, 3.0),
    resolution: int = 200,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(xs, ys, density)``: ``exp(log_prob)`` on a ``resolution``² grid (density[i, j] at (xs[j], ys[i]))."""
    resolution = integer(resolution, "resolution", minimum=2)
    xs = np.linspace(*xlim, resolution, dtype=np.float32)
    ys = np.linspace(*ylim, resolution, dtype=np.float32)
    grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    # Chunks of at most 8,192 points: they bound one call's memory, and few of them keep the fixed cost
    # of each eager call through a deep flow (a 40 x 40 grid is one call, not eight).
    chunks = np.array_split(grid, -(-len(grid) // 8192))
    log_prob = tf.concat([distribution.log_prob(chunk) for chunk in chunks], axis=0)
    density = np.exp(np.asarray(log_prob, dtype=np.float64)).reshape(resolution, resolution)
    return xs, ys, density


def _axes(ax: plt.Axes | None, size: tuple[float, float] = (5, 5)) -> plt.Axes:
    return ax if ax is not None else plt.figure(figsize=size).gca()


def plot_density(
    distribution: Any,
    ax: plt.Axes | None = None,
    xlim: Sequence[float] = (-3.0, 3.0),
    ylim: Sequence[float] = (-3.0, 3.0),
    resolution: int = 200,
    title: str = "Density",
) -> plt.Axes:
    """Heat map of a 2-D distribution's density on a grid."""
    ax = _axes(ax)
    xs, ys, density = density_grid(distribution, xlim, ylim, resolution)
    ax.imshow(density, origin="lower", extent=(*xlim, *ylim), aspect="auto", cmap="viridis")
    ax.set(title=title, xlabel="$x_1$", ylabel="$x_2$")
    return ax


def plot_samples(
    x: Any,
    ax: plt.Axes | None = None,
    title: str = "Samples",
    xlim: Sequence[float] | None = None,
    ylim: Sequence[float] | None = None,
    **scatter: Any,
) -> plt.Axes:
    """Scatter plot of 2-D points (data or samples)."""
    ax = _axes(ax)
    points = np.asarray(x)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"plot_samples needs points of shape (n, 2), got {points.shape}")
    ax.scatter(points[:, 0], points[:, 1], **{"s": 2, "alpha": 0.5, **scatter})
    ax.set(title=title, xlabel="$x_1$", ylabel="$x_2$")
    if xlim is not None:
        ax.set_xlim(*xlim)
    if ylim is not None:
        ax.set_ylim(*ylim)
    return ax


def plot_loss(history: Any, ax: plt.Axes | None = None, title: str = "Training") -> plt.Axes:
    """Training (and validation) negative log-likelihood per epoch from a Keras ``History``."""
    ax = _axes(ax, (6, 4))
    logs = getattr(history, "history", history)
    if "loss" not in logs:
        raise ValueError("plot_loss needs a Keras History (or its .history dict) with a 'loss' entry")
    epochs = np.arange(1, len(logs["loss"]) + 1)
    curves = {"train": np.asarray(logs["loss"], dtype=np.float64)}
    if "val_loss" in logs:
        curves["validation"] = np.asarray(logs["val_loss"], dtype=np.float64)
    for label, values in curves.items():
        ax.plot(epochs, values, label=label)
    low, high = loss_limits(np.concatenate(list(curves.values())))
    if np.isfinite(low):
        ax.set_ylim(low, high)
        for label, values in curves.items():  # an epoch off the scale is marked at the top edge, not hidden
            off = values > high
            if off.any():
                ax.plot(epochs[off], np.full(off.sum(), high), "^", clip_on=False, color="crimson",
                        label=f"{label}: off the scale ({off.sum()} epoch{'s' if off.sum() > 1 else ''})")
    ax.set(title=title, xlabel="epoch", ylabel="negative log-likelihood (nats)")
    ax.legend()
    return ax


def loss_limits(values: Any) -> tuple[float, float]:
    """Y-limits that show a loss curve's shape: a rare spike does not set the scale.

    An epoch is a spike when its height above the curve's floor is more than three times that of
    its neighbours (the median of the two epochs on either side), so a loss that is high because
    training has just begun is shown, and one batch's blow-up is not.

    >>> loss_limits([2.0, 1.5, 1.2, 200.0, 1.0, 0.9, 0.85, 0.8])[1] < 3
    True
    >>> loss_limits([2.5, 2.0, 1.6, 1.3, 1.1, 1.0])[1] > 2.5
    True
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return float("nan"), float("nan")
    height = np.where(np.isfinite(values), values - finite.min(), np.nan)
    kept = []
    for i, h in enumerate(height):
        if not np.isfinite(h):
            continue
        around = np.concatenate([height[max(0, i - 2):i], height[i + 1:i + 3]])
        around = around[np.isfinite(around)]
        if around.size >= 2 and h > 3 * np.median(around) + 1e-9 and h > 0.05 * np.nanmax(height):
            continue  # a spike
        kept.append(values[i])
    kept = np.asarray(kept) if kept else finite
    low, high = float(kept.min()), float(kept.max())
    pad = 0.05 * (high - low) if high > low else 0.5
    return low - pad, high + pad
