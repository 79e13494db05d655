"""Figures: a loss curve's scale is set by its shape, not by one spike."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from flowlab.plots import loss_limits, plot_loss  # noqa: E402


def test_a_spike_does_not_set_the_scale_and_is_marked():
    loss = [2.4, 1.6, 1.2, 1.0, 200.0, 0.9, 0.8, 0.75, 0.7, 0.68]
    ax = plot_loss({"loss": loss, "val_loss": [v + 0.05 for v in loss]}, title="t")
    low, high = ax.get_ylim()
    assert high < 3.0 and low < 0.7
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("off the scale (1 epoch)" in label for label in labels), labels
    assert ax.get_title() == "t" and ax.get_xlabel() == "epoch" and "nats" in ax.get_ylabel()
    plt.close("all")


def test_a_smooth_curve_is_shown_whole():
    loss = np.linspace(3.0, 0.5, 40)
    low, high = loss_limits(loss)
    assert low < 0.5 and high > 3.0
    ax = plot_loss({"loss": loss})
    assert len(ax.get_legend().get_texts()) == 1  # nothing marked off the scale
    plt.close("all")


def test_nan_losses_are_ignored_for_the_scale():
    low, high = loss_limits([1.0, float("nan"), 0.5, float("inf")])
    assert 0.4 < low < 0.5 and 1.0 < high < 1.1
