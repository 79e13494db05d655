"""Every format Keras writes either brings a flow back bit for bit or refuses at save time (issue 15, item 1)."""

import h5py
import numpy as np
import pytest
import tensorflow as tf

from flowlab.flows import build_glow, build_iaf, build_maf, build_nsf, build_realnvp
from flowlab.saving import UnsupportedFormatError
from flowlab.training import density_model, fit

BUILDERS = {
    "maf": lambda: build_maf(2, n_layers=2, hidden_units=(4,)),
    "iaf": lambda: build_iaf(2, n_layers=1, hidden_units=(4,)),
    "realnvp": lambda: build_realnvp(2, n_layers=2, hidden_units=(4,)),
    "nsf": lambda: build_nsf(2, n_layers=1, bins=3, hidden_units=(4,)),
    # Its 1x1 convolutions draw a random rotation at build time: P and the signs of s are state too.
    "glow": lambda: build_glow((4, 4, 1), scales=1, steps=1, final_steps=1, filters=4),
}
X = np.random.default_rng(1).normal(size=(16, 2)).astype(np.float32)
IMAGES = np.random.default_rng(2).uniform(0.05, 0.95, size=(4, 4, 4, 1)).astype(np.float32)


def _data(flow):
    return IMAGES if flow == "glow" else X


def _trained_looking(builder):
    """A model whose weights are far from any fresh initialisation (RealNVP starts as the identity)."""
    model = _fresh(builder)
    rng = np.random.default_rng(7)
    for variable in model.weights:
        variable.assign(variable + 0.3 * rng.standard_normal(variable.shape).astype(np.float32))
    return model


def _fresh(builder):
    model = density_model(builder())
    model(IMAGES if model.distribution.event_shape.rank == 3 else X)  # Glow's Keras layers build on first call
    return model


def _save_checkpoint(model, path):
    tf.train.Checkpoint(model=model).write(str(path / "tfckpt"))


def _load_checkpoint(model, path):
    tf.train.Checkpoint(model=model).read(str(path / "tfckpt")).assert_existing_objects_matched()


FORMATS = {
    "tf checkpoint": (lambda m, p: m.save_weights(str(p / "ckpt")), lambda m, p: m.load_weights(str(p / "ckpt"))),
    "tf.train.Checkpoint": (_save_checkpoint, _load_checkpoint),
    "h5": (lambda m, p: m.save_weights(p / "w.h5"), lambda m, p: m.load_weights(p / "w.h5")),
    "weights.h5": (lambda m, p: m.save_weights(str(p / "w.weights.h5")),
                   lambda m, p: m.load_weights(str(p / "w.weights.h5"))),
    "save_format=h5": (lambda m, p: m.save_weights(str(p / "w"), save_format="h5"),
                       lambda m, p: m.load_weights(str(p / "w"))),
    # Keras writes weights to a .keras name as HDF5 too, with none of a flow's in it: flowlab's writer instead.
    "weights.keras": (lambda m, p: m.save_weights(str(p / "w.keras")), lambda m, p: m.load_weights(str(p / "w.keras"))),
}


# Every vector builder through flowlab's HDF5 writer, and every format with one builder: the writers walk
# variables, not flow types, so a full grid would only cost time (every builder x every format was run once
# by hand: all exact). Glow through a TF checkpoint: its 1x1 convolutions' P and signs, drawn at build time,
# were constants that no format saved (4 nats off); they are variables now.
CASES = ([(flow, "weights.h5") for flow in BUILDERS if flow != "glow"]
         + [("maf", fmt) for fmt in FORMATS if fmt != "weights.h5"] + [("glow", "tf checkpoint")])


@pytest.mark.parametrize("flow, fmt", CASES)
def test_weights_round_trip_bit_for_bit(flow, fmt, tmp_path):
    save, load = FORMATS[fmt]
    x = _data(flow)
    model = _trained_looking(BUILDERS[flow])
    save(model, tmp_path)
    copy = _fresh(BUILDERS[flow])
    expected = model(x).numpy()
    assert not np.array_equal(copy(x).numpy(), expected)  # a fresh flow differs: the test can fail
    load(copy, tmp_path)
    np.testing.assert_array_equal(copy(x).numpy(), expected)


@pytest.mark.parametrize("flow", ["realnvp"])
def test_savedmodel_round_trips_log_prob_bit_for_bit(flow, tmp_path):
    model = _trained_looking(BUILDERS[flow])
    model.save(str(tmp_path / "savedmodel"))
    loaded = tf.keras.models.load_model(str(tmp_path / "savedmodel"), compile=False)
    # The SavedModel runs a traced graph, whose kernels may round differently from eager ones by an
    # ulp: compare it with the same graph of the original.
    np.testing.assert_array_equal(loaded(X).numpy(), tf.function(model)(X).numpy())


def test_model_checkpoint_h5_holds_the_flows_weights(tmp_path):
    path = tmp_path / "best.h5"
    flow = BUILDERS["maf"]()
    model, _ = fit(flow, X, epochs=2, batch_size=8, learning_rate=0.05, verbose=0,
                   callbacks=[tf.keras.callbacks.ModelCheckpoint(str(path), save_weights_only=True)])
    with h5py.File(path, "r") as file:
        assert len(file["variables"]) == len(model.weights) > 0
    copy = _fresh(BUILDERS["maf"])
    copy.load_weights(str(path))
    np.testing.assert_array_equal(copy(X).numpy(), model(X).numpy())


@pytest.mark.parametrize("name, save_format", [("m.keras", None), ("m.h5", None), ("m", "h5")])
def test_whole_model_formats_that_cannot_hold_a_flow_refuse_at_save_time(name, save_format, tmp_path):
    model = _trained_looking(BUILDERS["maf"])
    kwargs = {} if save_format is None else {"save_format": save_format}
    with pytest.raises(UnsupportedFormatError, match=r"cannot be saved as a whole model.*model\.save_weights\("
                                                     r"'flow\.weights\.h5'\)"):
        model.save(str(tmp_path / name), **kwargs)
    assert not (tmp_path / name).exists()


def test_keras_save_functions_refuse_the_formats_that_cannot_hold_a_flow_too(tmp_path):
    """``tf.keras.models.save_model`` does not go through ``model.save``: it used to write a .keras file
    that then failed to load ("missing 1 required positional argument: 'distribution'")."""
    model = _trained_looking(BUILDERS["maf"])
    for save in (tf.keras.models.save_model, tf.keras.saving.save_model):
        with pytest.raises(UnsupportedFormatError, match=r"cannot be saved in the \.keras format.*"
                                                         r"model\.save_weights\('flow\.weights\.h5'\)"):
            save(model, str(tmp_path / "m.keras"))
    with pytest.warns(UserWarning, match="HDF5"), pytest.raises(NotImplementedError,  # Keras's own refusal
                                                                match=r"SavedModel format.*save_weights"):
        tf.keras.models.save_model(model, str(tmp_path / "m.h5"))
    assert not list(tmp_path.iterdir())


def test_model_checkpoint_of_a_whole_model_in_keras_format_fails_when_it_saves(tmp_path):
    callback = tf.keras.callbacks.ModelCheckpoint(str(tmp_path / "m.keras"))
    with pytest.raises(UnsupportedFormatError, match=r"\.keras format"):
        fit(BUILDERS["maf"](), X, epochs=1, batch_size=8, verbose=0, callbacks=[callback])


def test_an_hdf5_file_written_by_keras_itself_is_refused_not_loaded_as_a_random_flow(tmp_path):
    model = _trained_looking(BUILDERS["maf"])
    path = tmp_path / "keras.h5"
    tf.keras.Model.save_weights(model, str(path))  # Keras's own writer: it sees no layers, writes no weights
    with pytest.raises(ValueError, match=r"written by Keras's own HDF5 writer.*holds none of them"):
        _fresh(BUILDERS["maf"]).load_weights(str(path))


def test_weights_of_another_architecture_are_refused_and_nothing_is_assigned(tmp_path):
    model = _trained_looking(BUILDERS["maf"])
    model.save_weights(str(tmp_path / "w.weights.h5"))
    wider = density_model(build_maf(2, n_layers=2, hidden_units=(8,)))
    before = [v.numpy().copy() for v in wider.weights]
    with pytest.raises(ValueError, match=r"has shape .* rebuild the flow with the saved arguments"):
        wider.load_weights(str(tmp_path / "w.weights.h5"))
    deeper = density_model(build_maf(2, n_layers=3, hidden_units=(4,)))
    with pytest.raises(ValueError, match=r"holds \d+ weights but this flow has \d+"):
        deeper.load_weights(str(tmp_path / "w.weights.h5"))
    assert all(np.array_equal(b, v.numpy()) for b, v in zip(before, wider.weights))


def test_a_flow_inside_a_functional_model_round_trips_through_flowlab_hdf5(tmp_path):
    from flowlab.flows import build_nice
    from flowlab.saving import load_flow_weights, save_flow_weights

    def functional():
        flow = build_nice(2, n_layers=1, hidden_units=(4,))  # its final scaling is a bijector's own variable
        x = tf.keras.Input((2,))
        return flow, tf.keras.Model(x, flow.log_prob(x))

    flow, model = functional()
    assert len(model.weights) < len(flow.variables)  # what Keras's own HDF5 writer would miss
    for variable in flow.variables:
        variable.assign(variable + 0.3)
    save_flow_weights(flow, tmp_path / "f.weights.h5")
    copy_flow, copy = functional()
    assert not np.array_equal(copy(X).numpy(), model(X).numpy())
    load_flow_weights(copy_flow, tmp_path / "f.weights.h5")
    np.testing.assert_array_equal(copy(X).numpy(), model(X).numpy())
    with pytest.raises(TypeError, match=r"take the flow itself"):
        save_flow_weights(model, tmp_path / "m.weights.h5")
    with pytest.raises(ValueError, match=r"holds the weights of a flow.*load_flow_weights"):
        density_model(build_nice(2, n_layers=1, hidden_units=(4,))).load_weights(str(tmp_path / "f.weights.h5"))
