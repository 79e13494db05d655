"""Saving a flow's weights so that they come back bit for bit, in every format Keras writes.

A flow's weights live in TFP bijectors (``tf.Module``) and the Keras layers they hold, not in the
model's ``layers``. TF checkpoints, ``tf.train.Checkpoint`` and SavedModel follow the object graph
and see them all; Keras's HDF5 writers walk ``model.layers`` only and, for a flow, would write a
file with no weights in it that loads "successfully" into a new random flow. So
:class:`flowlab.training.DensityModel` routes ``save_weights("w.h5")`` (also ``.hdf5``,
``.weights.h5`` and ``ModelCheckpoint("w.h5", save_weights_only=True)``) here: every variable of
the model, in its deterministic order, one HDF5 dataset each. Loading checks the count and the
shapes, so a file from a different architecture is an error, not a silent partial load.

The ``.keras`` and whole-model ``.h5`` formats rebuild a model from its config; a TFP distribution
has none, so saving to them raises at save time and names the formats to use:
:class:`UnsupportedFormatError` from ``model.save``, and from ``tf.keras.models.save_model`` to
``.keras`` (through the model's ``get_config``); Keras's own ``NotImplementedError`` from
``tf.keras.models.save_model`` to ``.h5``.  Every other way round trips every flowlab flow bit for
bit, loaded into a flow rebuilt by the same builder call (SavedModel: the same graph).

==================================================  =========================================
format                                              a flowlab flow
==================================================  =========================================
``model.save_weights("ckpt")`` (TF checkpoint)      weights and optimizer state
``tf.train.Checkpoint(model=model)``                weights (and whatever else it is given)
``model.save_weights("w.h5" / "w.weights.h5")``     weights (this module; also ``"w.keras"``,
                                                    ``ModelCheckpoint("w.h5", save_weights_only=True)``)
``model.save("dir")``, ``tf.saved_model.save``      a ``log_prob`` that runs without flowlab
``model.save("m.keras" / "m.h5")``                  :class:`UnsupportedFormatError` at save time
``tf.keras.models.save_model(model, "m.keras")``    :class:`UnsupportedFormatError` at save time
``save_flow_weights(flow, "f.weights.h5")``         a flow inside any Keras model (functional too)
==================================================  =========================================

>>> import os, tempfile, flowlab, numpy as np
>>> from flowlab.flows import build_maf
>>> from flowlab.training import density_model
>>> flowlab.seed(0)
>>> model = density_model(build_maf(2, n_layers=1, hidden_units=(4,)))
>>> path = os.path.join(tempfile.mkdtemp(), "flow.weights.h5")
>>> model.save_weights(path)
>>> copy = density_model(build_maf(2, n_layers=1, hidden_units=(4,)))     # the same builder call
>>> copy.load_weights(path)
>>> x = np.array([[0.3, -1.2]], np.float32)
>>> bool(np.array_equal(copy(x), model(x)))
True
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["UnsupportedFormatError", "check_model_format", "is_hdf5", "is_hdf5_file", "load_hdf5_weights",
           "save_hdf5_weights", "save_flow_weights", "load_flow_weights"]

FORMAT = "flowlab-flow-weights"
VERSION = 1
_HDF5_SUFFIXES = (".h5", ".hdf5", ".keras")  # Keras writes save_weights("w.keras") as HDF5

_USE_INSTEAD = (
    "Save the weights instead -- model.save_weights('flow.weights.h5') (HDF5) or model.save_weights('flow_ckpt') "
    "(TF checkpoint, with the optimizer state) -- and load them into a flow rebuilt by the same builder call "
    "(density_model(build_maf(...)).load_weights(...)); or model.save('flow_savedmodel') for a SavedModel whose "
    "log_prob runs without flowlab."
)


class UnsupportedFormatError(ValueError, NotImplementedError):
    """A format that cannot hold a flow: raised when saving, never a silent save of no weights.

    Also a ``NotImplementedError``: that is how a Keras model says it has no config, which
    SavedModel's writer expects and skips (it stores the traced ``call`` instead).
    """


def is_hdf5(filepath: Any, save_format: str | None = None) -> bool:
    """True when Keras would write ``filepath`` as HDF5 (by ``save_format`` or the file's suffix).

    >>> is_hdf5("w.weights.h5"), is_hdf5("ckpt/weights"), is_hdf5("w", save_format="h5")
    (True, False, True)
    """
    if save_format is not None:
        return str(save_format).lower() in {"h5", "hdf5", "keras"}
    return str(os.fspath(filepath)).lower().endswith(_HDF5_SUFFIXES)


def is_hdf5_file(filepath: Any) -> bool:
    """True when ``filepath`` is an existing HDF5 file, whatever its name (``save_format="h5"``)."""
    import h5py

    path = os.fspath(filepath)
    return os.path.isfile(path) and h5py.is_hdf5(path)


def check_model_format(filepath: Any, save_format: str | None = None) -> None:
    """Raise :class:`UnsupportedFormatError` for a whole-model format that cannot hold a flow.

    >>> check_model_format("flow_savedmodel")            # SavedModel: fine
    >>> check_model_format("flow.keras")
    Traceback (most recent call last):
    ...
    flowlab.saving.UnsupportedFormatError: a flow cannot be saved as a whole model in the .keras format: ...
    """
    path = str(os.fspath(filepath)).lower()
    if save_format is not None and str(save_format).lower() in {"keras", "h5", "hdf5"}:
        kind = ".keras" if str(save_format).lower() == "keras" else "HDF5 (.h5)"
    elif path.endswith(".keras"):
        kind = ".keras"
    elif path.endswith(_HDF5_SUFFIXES):
        kind = "HDF5 (.h5)"
    else:
        return
    raise UnsupportedFormatError(
        f"a flow cannot be saved as a whole model in the {kind} format: that format rebuilds the model "
        f"from its config, and a TensorFlow Probability distribution has none. {_USE_INSTEAD}"
    )


def no_config(model: Any) -> UnsupportedFormatError:
    """The error of a flow's ``get_config``: the ``.keras`` writer asks for it first, before writing anything.

    ``tf.keras.models.save_model(model, "m.keras")`` and ``tf.keras.saving.save_model`` do not go
    through ``model.save``; this is where they meet a flow.
    """
    return UnsupportedFormatError(
        f"{type(model).__name__} has no config (a TensorFlow Probability distribution has none), so it cannot be "
        f"saved in the .keras format, which rebuilds a model from its config. {_USE_INSTEAD}"
    )


def save_hdf5_weights(variables: Sequence[Any], filepath: Any, overwrite: bool = True, holder: str = "model") -> None:
    """Write ``variables`` (a model's ``weights``, in order) to an HDF5 file, one dataset each.

    ``holder`` ("model" or "flow") records whose variable order the file follows: a flow's order is
    not its model's, so a file is only loaded into the kind that wrote it."""
    import h5py

    path = Path(os.fspath(filepath))
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists and overwrite=False")
    if not variables:
        raise ValueError("the model has no weights to save: build the flow (call it once) first")
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as file:
        file.attrs["format"] = FORMAT
        file.attrs["version"] = VERSION
        file.attrs["holder"] = holder
        group = file.create_group("variables")
        for index, variable in enumerate(variables):
            dataset = group.create_dataset(f"{index:05d}", data=np.asarray(variable.numpy()))
            dataset.attrs["name"] = variable.name


def load_hdf5_weights(variables: Sequence[Any], filepath: Any, holder: str = "model") -> None:
    """Assign the weights of :func:`save_hdf5_weights`'s file to ``variables``, checking count and shapes.

    Nothing is assigned unless every weight fits.
    """
    import h5py

    path = Path(os.fspath(filepath))
    if not path.exists():
        raise FileNotFoundError(f"no weights file at {path}")
    with h5py.File(path, "r") as file:
        if file.attrs.get("format") != FORMAT:
            written_by = "Keras's own HDF5 writer" if "layer_names" in file.attrs or "keras_version" in file.attrs \
                else "something other than flowlab"
            raise ValueError(
                f"{path} was written by {written_by}, which does not see a flow's weights (they live in TFP "
                "bijectors, not in model.layers), so it holds none of them. Save again with "
                "flowlab's DensityModel.save_weights (fit and density_model return one), or a TF checkpoint."
            )
        written = file.attrs.get("holder", "model")
        if written != holder:
            how = "flowlab.saving.load_flow_weights(flow, path)" if written == "flow" else "model.load_weights(path)"
            raise ValueError(f"{path} holds the weights of a {written}, in a {written}'s order: load them with {how}")
        group = file["variables"]
        values = [group[key][()] for key in sorted(group)]
        names = [group[key].attrs.get("name", "") for key in sorted(group)]
    if len(values) != len(variables):
        raise ValueError(
            f"{path} holds {len(values)} weights but this flow has {len(variables)}: load into a flow built "
            "by the same builder with the same arguments (layers, hidden units, bins) as the saved one"
        )
    for index, (value, variable, name) in enumerate(zip(values, variables, names)):
        if tuple(value.shape) != tuple(variable.shape):
            raise ValueError(
                f"weight {index} ({name}) in {path} has shape {tuple(value.shape)}, but this flow's "
                f"({variable.name}) has {tuple(variable.shape)}: rebuild the flow with the saved arguments"
            )
    for value, variable in zip(values, variables):
        variable.assign(value.astype(variable.dtype.as_numpy_dtype, copy=False))


def _flow_variables(flow: Any) -> Sequence[Any]:
    import tensorflow as tf

    if isinstance(flow, tf.keras.Model):
        raise TypeError(
            "save_flow_weights and load_flow_weights take the flow itself (a TFP distribution or a conditional "
            "flow), not a Keras model: a functional model such as tf.keras.Model(x, flow.log_prob(x)) tracks only "
            "the weights of Keras layers and misses a bijector's own variables. For a DensityModel use "
            "model.save_weights / model.load_weights.")
    if not isinstance(flow, tf.Module):
        raise TypeError(f"expected a flow (a TFP distribution or a tf.Module), got {type(flow).__name__}")
    return flow.variables


def save_flow_weights(flow: Any, filepath: Any, overwrite: bool = True) -> None:
    """Every variable of ``flow`` -- Keras layers' and bijectors' own -- to an HDF5 file.

    For a flow used inside any Keras model (functional ones included, whose HDF5 writer sees only
    Keras layers): save the flow, and load it into the flow of a model rebuilt the same way.

    >>> import os, tempfile, flowlab, numpy as np
    >>> from flowlab.flows import build_nice
    >>> flow = build_nice(2, n_layers=1, hidden_units=(4,))
    >>> _ = [v.assign(v + 0.1) for v in flow.variables]
    >>> path = os.path.join(tempfile.mkdtemp(), "nice.weights.h5")
    >>> save_flow_weights(flow, path)
    >>> copy = build_nice(2, n_layers=1, hidden_units=(4,))
    >>> load_flow_weights(copy, path)
    >>> bool(np.array_equal(copy.log_prob([[0.3, -1.2]]), flow.log_prob([[0.3, -1.2]])))
    True
    """
    save_hdf5_weights(_flow_variables(flow), filepath, overwrite=overwrite, holder="flow")


def load_flow_weights(flow: Any, filepath: Any) -> None:
    """Load :func:`save_flow_weights`'s file into ``flow`` (built by the same builder call), checking shapes."""
    load_hdf5_weights(_flow_variables(flow), filepath, holder="flow")
