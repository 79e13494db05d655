"""Make sure TensorFlow serves Keras 2 (``tf-keras``), which TFP 0.25 needs.

TensorFlow >= 2.16 resolves ``tf.keras`` lazily, on first use, to Keras 3 unless the environment
variable ``TF_USE_LEGACY_KERAS=1`` is set.  TFP's distributions then fail inside Keras 3 models
("A KerasTensor cannot be used as input to a TensorFlow function").  The variable is read when
``tf.keras`` is first touched, not when TensorFlow is imported, so setting it here is enough as
long as nothing has used ``tf.keras`` yet; if something has, it is too late and we say so.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
import types

__all__ = ["Keras3LayerError", "LegacyKerasError", "find_keras3_layers", "is_keras3_layer", "reject_keras3_layers",
           "require_legacy_keras"]

_HOW_TO_FIX = (
    "flowlab needs Keras 2 (the tf-keras package): TensorFlow Probability 0.25 does not work with "
    "Keras 3. tf.keras was already resolved to Keras 3 in this process ({module}). Restart the "
    "Python process or Jupyter kernel and run `import flowlab` before anything uses tf.keras, or "
    "set TF_USE_LEGACY_KERAS=1 in the environment before Python starts "
    "(in a notebook: `%env TF_USE_LEGACY_KERAS=1` as the very first cell)."
)


class LegacyKerasError(ImportError):
    """``tf.keras`` is Keras 3 in this process, and it cannot be switched back."""


def require_legacy_keras() -> None:
    """Select Keras 2 for ``tf.keras``; raise :class:`LegacyKerasError` if it is too late.

    Cheap when TensorFlow is not loaded yet (the usual case): the variable is set and TensorFlow
    reads it later. When TensorFlow is already loaded, ``tf.keras`` is resolved now to find out.

    >>> import flowlab, tensorflow as tf
    >>> require_legacy_keras()                           # after `import flowlab`: nothing to do
    >>> tf.keras.Model.__module__.split(".")[0]
    'tf_keras'
    """
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    if importlib.util.find_spec("tf_keras") is None:  # pragma: no cover - depends on the installation
        raise LegacyKerasError("flowlab needs the tf-keras package (Keras 2): pip install tf-keras==2.21.0")
    tf = sys.modules.get("tensorflow")
    if tf is None:
        return
    module = tf.keras.Model.__module__
    # ``import keras`` (Keras 3) beside us is harmless: TFP and flowlab only go through tf.keras.
    if not module.startswith("tf_keras"):
        raise LegacyKerasError(_HOW_TO_FIX.format(module=module))


class Keras3LayerError(TypeError):
    """A Keras 3 layer (``import keras``) was given where flowlab needs a ``tf.keras`` (Keras 2) layer."""


def is_keras3_layer(obj: object) -> bool:
    """True for a Keras 3 layer or model (its classes live in ``keras.src``), False for ``tf_keras`` ones.

    >>> import flowlab, tensorflow as tf
    >>> is_keras3_layer(tf.keras.layers.Dense(2))
    False
    """
    return any(
        cls.__name__ == "Layer" and (cls.__module__ == "keras" or cls.__module__.startswith("keras."))
        for cls in type(obj).__mro__
    )


_LEAVES = (type(None), str, bytes, int, float, type, types.ModuleType)


def find_keras3_layers(root: object, max_depth: int = 12) -> list[object]:
    """The Keras 3 layers reachable from ``root``: attributes, containers, closures and bound methods.

    A Keras 3 layer is not a ``tf.Module``, so ``distribution.trainable_variables`` never sees its
    weights and a flow using it as a conditioner trains everything but it, without a word. The
    search follows what a bijector may hold its conditioner by: an attribute, a list or dict, a
    ``functools.partial``, a lambda's closure or a bound method.
    """
    found: list[object] = []
    seen: set[int] = set()
    stack: list[tuple[object, int]] = [(root, 0)]
    while stack:
        obj, depth = stack.pop()
        if id(obj) in seen or depth > max_depth or isinstance(obj, _LEAVES):
            continue
        seen.add(id(obj))
        if is_keras3_layer(obj):
            found.append(obj)
            continue
        children: list[object] = []
        if isinstance(obj, dict):
            children += list(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            children += list(obj)
        elif isinstance(obj, types.MethodType):
            children += [obj.__self__, obj.__func__]
        elif isinstance(obj, types.FunctionType):  # a function or lambda: what it closes over or names
            children += [cell.cell_contents for cell in (obj.__closure__ or ()) if _filled(cell)]
            children += [obj.__globals__[n] for n in obj.__code__.co_names if n in obj.__globals__]
        elif isinstance(obj, functools.partial):
            children += [obj.func, *obj.args, *obj.keywords.values()]
        elif not (type(obj).__module__ or "").startswith(("numpy", "tensorflow.python.framework")):
            children += list(getattr(obj, "__dict__", {}).values())
        stack.extend((child, depth + 1) for child in children)
    return found


def _filled(cell: object) -> bool:
    try:
        cell.cell_contents  # type: ignore[attr-defined]  # noqa: B018 - read only to see if it raises
    except ValueError:  # an empty cell
        return False
    return True


def reject_keras3_layers(root: object, what: str = "the flow") -> None:
    """Raise :class:`Keras3LayerError` if ``root`` holds a Keras 3 layer, with the fix."""
    layers = find_keras3_layers(root)
    if layers:
        kind = type(layers[0])
        raise Keras3LayerError(
            f"{what} holds a Keras 3 layer ({kind.__module__}.{kind.__name__}, from `import keras`): its weights "
            "are invisible to TensorFlow Probability and would never train. Build conditioners from "
            "tf.keras.layers after `import flowlab` (or `import tf_keras as keras`), not from `import keras`."
        )
