r"""Binary masks for coupling layers: which variables a layer reads (1) and which it transforms (0).

A coupling layer (Dinh et al. 2014, 2016) splits its input with a binary mask :math:`b`: the part
:math:`b \odot x` passes through unchanged and conditions the transformation of the rest,
:math:`(1 - b) \odot x`.  For images RealNVP uses two patterns:

- a **checkerboard**, :math:`b_{ij} = 1` where :math:`i + j` is even (parity 0) or odd (parity 1):
  a transformed pixel's four direct neighbours are all copied, and a conditioner of stacked 3×3
  convolutions reads every copied pixel within its receptive field (9×9 for four convolutions);
- a **channel mask**, which keeps the first (or second) half of the channels, used after a
  :class:`~flowlab.bijectors.squeeze.Squeeze` has moved space into channels.

Consecutive layers alternate the parity or half, so every variable is transformed in turn.

Example::

    checkerboard(4, 4)[..., 0]      # [[1, 0, 1, 0], [0, 1, 0, 1], ...]
    channel_mask(14, 14, 4, half=1)  # channels 2 and 3 are read, 0 and 1 transformed

References: L. Dinh, D. Krueger, Y. Bengio, "NICE" (2014); L. Dinh, J. Sohl-Dickstein, S. Bengio,
"Density estimation using Real NVP" (2016), section 3.4.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from flowlab.validation import integer as _positive_int

__all__ = ["checkerboard", "channel_mask", "alternating_mask", "validate_mask"]


def _parity(value: Any, name: str) -> int:
    if value not in (0, 1) or isinstance(value, bool):
        raise ValueError(f"{name} must be 0 or 1, got {value!r}")
    return int(value)


def validate_mask(mask: Any, event_shape: Any = None) -> np.ndarray:
    """Return ``mask`` as a float32 array after checking that it is a usable coupling mask.

    A mask must contain only 0s and 1s, and both: a mask of all ones transforms nothing and a mask
    of all zeros gives the conditioner nothing to read -- either way the layer is not a coupling.
    With ``event_shape``, the mask's shape must equal it.
    """
    try:
        array = np.asarray(mask, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"a coupling mask must be an array of 0s and 1s: {err}") from None
    if array.ndim == 0:
        raise ValueError("a coupling mask must have the event's shape (at least one axis), got a scalar")
    if event_shape is not None:
        expected = tuple(int(d) for d in event_shape)
        if array.shape != expected:
            raise ValueError(f"the mask has shape {array.shape}, but the events have shape {expected}")
    if not np.all((array == 0) | (array == 1)):
        bad = array[(array != 0) & (array != 1)].ravel()[0]
        raise ValueError(f"a coupling mask must be binary (0s and 1s), found the value {bad}")
    if array.all():
        raise ValueError("the mask is all ones: the coupling layer would transform no variable")
    if not array.any():
        raise ValueError("the mask is all zeros: the conditioner would have no variable to read")
    return array.astype(np.float32)


def checkerboard(height: int, width: int, channels: int = 1, parity: int = 0) -> np.ndarray:
    """A ``(height, width, channels)`` checkerboard: 1 where ``(row + column) % 2 == parity``.

    Raises ``ArgumentError``/``ValueError`` for non-positive sizes, a parity other than 0 or 1, one pixel.

    >>> checkerboard(2, 3)[..., 0]
    array([[1., 0., 1.],
           [0., 1., 0.]], dtype=float32)

    Reference: Dinh, Sohl-Dickstein, Bengio, "Density estimation using Real NVP" (2017), section 3.4.
    """
    height, width = _positive_int(height, "height"), _positive_int(width, "width")
    channels, parity = _positive_int(channels, "channels"), _parity(parity, "parity")
    if height * width < 2:
        raise ValueError(f"a checkerboard needs at least two pixels, got {height}x{width}")
    rows, cols = np.indices((height, width))
    board = ((rows + cols) % 2 == parity).astype(np.float32)
    return np.repeat(board[:, :, None], channels, axis=2)


def channel_mask(height: int, width: int, channels: int, half: int = 0) -> np.ndarray:
    """A ``(height, width, channels)`` mask that reads the first (``half=0``) or second half of the channels.

    Raises ``ValueError`` for fewer than 2 channels (nothing to split).

    >>> channel_mask(1, 1, 4, half=1)[0, 0]
    array([0., 0., 1., 1.], dtype=float32)
    """
    height, width = _positive_int(height, "height"), _positive_int(width, "width")
    channels, half = _positive_int(channels, "channels"), _parity(half, "half")
    if channels < 2:
        raise ValueError(f"a channel mask needs at least 2 channels to split, got {channels}")
    first = np.zeros(channels, dtype=np.float32)
    first[: channels // 2] = 1.0
    pattern = first if half == 0 else 1.0 - first
    return np.broadcast_to(pattern, (height, width, channels)).astype(np.float32)


def alternating_mask(dims: int, parity: int = 0) -> np.ndarray:
    """A vector mask ``[1, 0, 1, 0, ...]`` (parity 0) or ``[0, 1, 0, 1, ...]`` (parity 1).

    Raises ``ValueError`` for fewer than 2 variables.

    >>> alternating_mask(5, parity=1)
    array([0., 1., 0., 1., 0.], dtype=float32)
    """
    dims, parity = _positive_int(dims, "dims"), _parity(parity, "parity")
    if dims < 2:
        raise ValueError(f"a coupling needs at least 2 variables, got dims={dims}")
    return (np.arange(dims) % 2 == parity).astype(np.float32)
