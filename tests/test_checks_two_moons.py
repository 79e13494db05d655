"""Lab 02's checks: ✔ for right answers written differently, ✘ naming the idea for wrong ones.

Every TODO has at least two right answers and two plausible wrong ones, among them the false passes
found by hand (a permutation at one end only, one MAF shared three times, SGD, a lying log-det, a
subclassed model). A check that raises on its own is a bug, never the student's: no verdict here
may say "the check itself failed".
"""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from check_verdicts import fails, passes
from sklearn.datasets import make_moons

from flowlab.checks import two_moons as check
from flowlab.flows import build_maf, made_layer

tfd, tfb = tfp.distributions, tfp.bijectors


class AlwaysEqual:
    def __eq__(self, other):
        return True

    def __float__(self):
        return 0.0


# --- Exercise 1: the base distribution -------------------------------------------------------------
@pytest.mark.parametrize("base", [
    lambda: tfd.MultivariateNormalDiag(loc=[0.0, 0.0]),
    lambda: tfd.Independent(tfd.Normal(loc=[0.0, 0.0], scale=1.0), reinterpreted_batch_ndims=1),
    lambda: tfd.MultivariateNormalTriL(loc=tf.zeros(2), scale_tril=tf.eye(2)),
])
def test_base_distribution_right(capsys, base):
    passes(capsys, check.base_distribution, base())


@pytest.mark.parametrize("base, hint", [
    (lambda: tfd.Normal(loc=[0.0, 0.0], scale=1.0), "batch of scalars"),
    (lambda: tfd.MultivariateNormalDiag(loc=[0.0, 0.0], scale_diag=[2.0, 1.0]), "unit scales"),
    (lambda: tfd.MultivariateNormalDiag(loc=[0.0, 0.0, 0.0]), "event shape"),
    (lambda: ..., "placeholder"),
    (lambda: AlwaysEqual(), "should be a tensorflow_probability Distribution"),
])
def test_base_distribution_wrong(capsys, base, hint):
    fails(capsys, check.base_distribution, base(), hint=hint)


# --- Exercise 2: the affine bijector ---------------------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda: tfb.Chain([tfb.Shift([0.5, 0.25]), tfb.Scale([1.0, 0.5])]),
    lambda: tfb.Shift([0.5, 0.25])(tfb.Scale([1.0, 0.5])),
    lambda: tfb.Chain([tfb.Shift([0.5, 0.25]), tfb.ScaleMatvecDiag([1.0, 0.5])]),
])
def test_affine_bijector_right(capsys, make):
    passes(capsys, check.affine_bijector, make())


@pytest.mark.parametrize("make, hint", [
    (lambda: tfb.Chain([tfb.Scale([1.0, 0.5]), tfb.Shift([0.5, 0.25])]), "right to left"),
    (lambda: tfb.Shift([0.5, 0.25]), "combine"),
    (lambda: "tfb.Shift", "should be a tensorflow_probability Bijector"),
])
def test_affine_bijector_wrong(capsys, make, hint):
    fails(capsys, check.affine_bijector, make(), hint=hint)


# --- Exercise 3: the transformed distribution ------------------------------------------------------
def test_transformed_distribution(capsys):
    base = tfd.MultivariateNormalDiag(loc=[0.0, 0.0])
    affine = tfb.Shift([0.5, 0.25])(tfb.Scale([1.0, 0.5]))
    passes(capsys, check.transformed_distribution, tfd.TransformedDistribution(base, affine))
    passes(capsys, check.transformed_distribution, affine(base))  # a bijector called on a distribution
    passes(capsys, check.transformed_distribution, tfd.MultivariateNormalDiag(loc=[0.5, 0.25], scale_diag=[1.0, 0.5]))
    fails(capsys, check.transformed_distribution, base, hint="N((0.5, 0.25)")
    scalars = tfd.Normal(loc=[0.0, 0.0], scale=1.0)  # the wrong base of Exercise 1, carried along
    fails(capsys, check.transformed_distribution, tfd.TransformedDistribution(scalars, affine),
          hint="batch of two scalar distributions")
    fails(capsys, check.transformed_distribution, tfd.TransformedDistribution(base, tfb.Invert(affine)),
          hint="transform the standard normal")


# --- Exercise 4: the MAF chain ---------------------------------------------------------------------
def _maf():
    return made_layer(2, (16,))


def _reversed_chain(layers):
    return tfb.Chain(list(reversed(layers)))


def test_flow_bijector_right(capsys):
    passes(capsys, check.flow_bijector, _reversed_chain([b for _ in range(3) for b in (_maf(), tfb.Permute([1, 0]))]))
    # The list not reversed acts in the other order -- a swap, then MAF, ...: just as good a flow.
    passes(capsys, check.flow_bijector, tfb.Chain([b for _ in range(3) for b in (_maf(), tfb.Permute([1, 0]))]))
    passes(capsys, check.flow_bijector, build_maf(2, n_layers=3, hidden_units=(8,)).bijector)
    # Nested chains and bijector calls compose too.
    a, b, c = _maf(), _maf(), _maf()
    passes(capsys, check.flow_bijector, tfb.Permute([1, 0])(c)(tfb.Permute([1, 0])(b)(tfb.Permute([1, 0])(a))))


def test_flow_bijector_wrong(capsys):
    fails(capsys, check.flow_bijector, _reversed_chain([_maf(), _maf(), _maf()]), hint="Permute")
    fails(capsys, check.flow_bijector, _reversed_chain([_maf(), _maf(), _maf(), tfb.Permute([1, 0])]),
          hint=("no tfb.Permute([1, 0]) between them", "not only at one end"))
    fails(capsys, check.flow_bijector, _reversed_chain([tfb.Permute([1, 0]), _maf(), _maf(), _maf()]),
          hint="not only at one end")
    shared = _maf()
    fails(capsys, check.flow_bijector, _reversed_chain([shared, tfb.Permute([1, 0])] * 3), hint="share their weights")
    made = tfb.AutoregressiveNetwork(params=2, event_shape=[2], hidden_units=[16])
    same_network = [b for _ in range(3)
                    for b in (tfb.MaskedAutoregressiveFlow(shift_and_log_scale_fn=made), tfb.Permute([1, 0]))]
    fails(capsys, check.flow_bijector, _reversed_chain(same_network), hint="share an AutoregressiveNetwork")
    identity = [b for _ in range(3) for b in (_maf(), tfb.Permute([0, 1]))]
    fails(capsys, check.flow_bijector, _reversed_chain(identity), hint="Permute")
    fails(capsys, check.flow_bijector, _reversed_chain([_maf(), tfb.Permute([1, 0])]), hint="three")
    fails(capsys, check.flow_bijector, tfb.Shift([1.0, 2.0]), hint="holds no tfb.MaskedAutoregressiveFlow")
    fails(capsys, check.flow_bijector, ..., hint="placeholder")


# --- Exercises 5 and 6: the Keras model and its compilation ---------------------------------------
def _functional(flow):
    x_ = tf.keras.Input(shape=(2,))
    return tf.keras.Model(x_, flow.log_prob(x_))


class FlowModel(tf.keras.Model):
    """A subclassed model: its output is the flow's log_prob, and it owns the flow's networks."""

    def __init__(self, flow):
        super().__init__()
        self.flow = flow
        self.networks = [b._shift_and_log_scale_fn for b in flow.bijector.bijectors
                         if isinstance(b, tfb.MaskedAutoregressiveFlow)]

    def call(self, x):
        return self.flow.log_prob(x)


def test_keras_model_right(capsys):
    flow = build_maf(2, n_layers=2, hidden_units=(8,))
    passes(capsys, check.keras_model, _functional(flow), flow)
    passes(capsys, check.keras_model, FlowModel(flow), flow)  # never called before the check: no input shape


def test_keras_model_wrong(capsys):
    flow = build_maf(2, n_layers=2, hidden_units=(8,))
    x_ = tf.keras.Input(shape=(2,))
    fails(capsys, check.keras_model, tf.keras.Model(x_, flow.distribution.log_prob(x_)), flow,
          hint="trainable_distribution.log_prob(x)")
    fails(capsys, check.keras_model, tf.keras.Model(x_, -flow.log_prob(x_)), flow, hint="log_prob(x)")
    y_ = tf.keras.Input(shape=(3,))
    fails(capsys, check.keras_model, tf.keras.Model(y_, tf.reduce_sum(y_, -1)), flow, hint="input shape")
    other = build_maf(2, n_layers=2, hidden_units=(8,))
    for a, b in zip(other.trainable_variables, flow.trainable_variables):
        a.assign(b)  # same numbers, other variables: fit would train the wrong ones
    fails(capsys, check.keras_model, _functional(other), flow, hint="does not own the flow's variables")


def _nll(_, log_prob):
    return -log_prob


@pytest.mark.parametrize("compile_args", [
    lambda: dict(optimizer=tf.keras.optimizers.Adam(learning_rate=1e-3, global_clipnorm=1.0), loss=_nll),
    lambda: dict(optimizer=tf.keras.optimizers.Adam(clipnorm=0.5), loss=lambda y, lp: -tf.reduce_mean(lp)),
    lambda: dict(optimizer=tf.keras.optimizers.legacy.Adam(1e-3, clipvalue=1.0), loss=lambda y, lp: tf.negative(lp)),
])
def test_compiled_model_right(capsys, compile_args):
    model = _functional(build_maf(2, n_layers=1, hidden_units=(8,)))
    model.compile(**compile_args())
    passes(capsys, check.compiled_model, model)


@pytest.mark.parametrize("compile_args, hint", [
    (lambda: dict(optimizer="adam", loss=_nll), "clip"),
    (lambda: dict(optimizer=tf.keras.optimizers.SGD(1e-3, global_clipnorm=1.0), loss=_nll), "Adam"),
    (lambda: dict(optimizer=tf.keras.optimizers.RMSprop(1e-3, global_clipnorm=1.0), loss=_nll), "Adam"),
    (lambda: dict(optimizer=tf.keras.optimizers.Adam(1e-2, global_clipnorm=1.0), loss=_nll), "learning rate"),
    (lambda: dict(optimizer=tf.keras.optimizers.Adam(global_clipnorm=1.0), loss=lambda y, lp: lp), "negative"),
    (lambda: dict(optimizer=tf.keras.optimizers.Adam(global_clipnorm=1.0), loss=lambda y, lp: -lp + tf.reduce_sum(y)),
     "ignore y_true"),
])
def test_compiled_model_wrong(capsys, compile_args, hint):
    model = _functional(build_maf(2, n_layers=1, hidden_units=(8,)))
    model.compile(**compile_args())
    fails(capsys, check.compiled_model, model, hint=hint)


def test_compiled_model_not_compiled(capsys):
    fails(capsys, check.compiled_model, _functional(build_maf(2, n_layers=1, hidden_units=(8,))), hint="compile")


# --- Training and the test NLL: the notebook's fast-mode recipe ------------------------------------
def _lab_flow(layers):
    base = tfd.MultivariateNormalDiag(loc=[0.0, 0.0], scale_diag=[1.0, 1.0])
    return tfd.TransformedDistribution(base, _reversed_chain(layers))


def _train(flow, optimizer, epochs=30):
    """The notebook's recipe in fast mode: 10,000 points, batch 128, lr / 10 for the last quarter."""
    x = make_moons(10000, noise=0.05, random_state=0)[0].astype(np.float32)
    model = _functional(flow)
    model.compile(optimizer=optimizer, loss=_nll)
    settle = tf.keras.callbacks.LearningRateScheduler(lambda e, lr: 1e-4 if e >= 0.75 * epochs else 1e-3)
    model.fit(x, np.zeros((len(x), 0), np.float32), batch_size=128, epochs=epochs, callbacks=[settle], verbose=0)
    return flow


@pytest.fixture(scope="module")
def moons_test():
    return make_moons(2000, noise=0.05, random_state=1)[0].astype(np.float32)


@pytest.fixture(scope="module")
def trained():
    tf.keras.utils.set_random_seed(1)
    layers = [b for _ in range(3) for b in (made_layer(2), tfb.Permute([1, 0]))]
    return _train(_lab_flow(layers), tf.keras.optimizers.Adam(1e-3, global_clipnorm=1.0))


class LyingLogDet(tfb.Bijector):
    """The trained chain with a log-determinant that claims one nat more per point than is true."""

    def __init__(self, inner):
        super().__init__(forward_min_event_ndims=1, name="lying")
        self.inner = inner

    def _forward(self, z):
        return self.inner.forward(z)

    def _inverse(self, x):
        return self.inner.inverse(x)

    def _inverse_log_det_jacobian(self, x):
        return self.inner.inverse_log_det_jacobian(x, event_ndims=1) + 1.0


class Inflated(tfd.Distribution):
    """Not a transformed distribution at all: an untrained flow's log_prob plus two nats."""

    def __init__(self, flow):
        super().__init__(dtype=tf.float32, reparameterization_type=tfd.FULLY_REPARAMETERIZED,
                         validate_args=False, allow_nan_stats=True, name="inflated")
        self.flow = flow

    def _event_shape(self):
        return tf.TensorShape([2])

    def _batch_shape(self):
        return tf.TensorShape([])

    def _log_prob(self, x):
        return self.flow.log_prob(x) + 2.0


def test_trained_flow_right(capsys, trained, moons_test):
    passes(capsys, check.trained_flow, trained, moons_test)
    passes(capsys, check.trained_flow, trained, moons_test.astype(np.float64).tolist())  # any array-like
    # The same trained bijector over a base written another way.
    base = tfd.Independent(tfd.Normal(loc=[0.0, 0.0], scale=1.0), reinterpreted_batch_ndims=1)
    passes(capsys, check.trained_flow, tfd.TransformedDistribution(base, trained.bijector), moons_test)


def test_trained_flow_wrong(capsys, trained, moons_test):
    untrained = _lab_flow([b for _ in range(3) for b in (made_layer(2), tfb.Permute([1, 0]))])
    fails(capsys, check.trained_flow, untrained, moons_test, hint="model.fit")
    tf.keras.utils.set_random_seed(1)
    sgd = _train(_lab_flow([b for _ in range(3) for b in (made_layer(2), tfb.Permute([1, 0]))]),
                 tf.keras.optimizers.SGD(1e-3, global_clipnorm=1.0), epochs=10)  # 30 epochs: 1.7 nats
    fails(capsys, check.trained_flow, sgd, moons_test, hint="Adam")
    liar = tfd.TransformedDistribution(trained.distribution, LyingLogDet(trained.bijector))
    assert -float(tf.reduce_mean(liar.log_prob(moons_test))) < -float(tf.reduce_mean(trained.log_prob(moons_test)))
    fails(capsys, check.trained_flow, liar, moons_test, hint="computed by autodiff")
    untrained_liar = tfd.TransformedDistribution(untrained.distribution, LyingLogDet(LyingLogDet(untrained.bijector)))
    fails(capsys, check.trained_flow, untrained_liar, moons_test, hint="computed by autodiff")
    fails(capsys, check.trained_flow, Inflated(untrained), moons_test, hint="integrates to more than 1")
    fails(capsys, check.trained_flow, ..., moons_test, hint="placeholder")


def test_trained_flow_is_measured_on_the_labs_test_set(capsys, trained, moons_test):
    """An untrained flow on X_test's easiest points, or on X_test moved towards its base's mode, fails."""
    untrained = _lab_flow([b for _ in range(3) for b in (made_layer(2), tfb.Permute([1, 0]))])
    scores = untrained.log_prob(moons_test).numpy()
    easiest = moons_test[np.argsort(-scores)[:100]]
    fails(capsys, check.trained_flow, untrained, easiest, hint="not the lab's test set")
    fails(capsys, check.trained_flow, trained, moons_test * 0.1, hint="not the lab's test set")
    fails(capsys, check.test_nll, -float(np.mean(trained.log_prob(easiest))), trained, easiest,
          hint="not the lab's test set")


def test_trained_flow_is_the_labs_three_maf_flow(capsys, trained, moons_test):
    """A good density that is not the student's MAF chain (a fitted mixture, a flow of two MAFs) fails."""
    from sklearn.mixture import GaussianMixture

    points = make_moons(5000, noise=0.05, random_state=0)[0]
    fitted = GaussianMixture(40, covariance_type="full", random_state=0).fit(points)
    mixture = tfd.MixtureSameFamily(
        tfd.Categorical(probs=fitted.weights_.astype(np.float32)),
        tfd.MultivariateNormalTriL(loc=fitted.means_.astype(np.float32),
                                   scale_tril=np.linalg.cholesky(fitted.covariances_).astype(np.float32)))
    assert -float(tf.reduce_mean(mixture.log_prob(moons_test))) < check.TRAINED_NLL
    fails(capsys, check.trained_flow, mixture, moons_test, hint="not the lab's flow")
    two = tfd.TransformedDistribution(trained.distribution, tfb.Chain(list(trained.bijector.bijectors)[2:]))
    fails(capsys, check.trained_flow, two, moons_test, hint="not the lab's flow")


def test_test_nll(capsys, trained, moons_test):
    nll = -tf.reduce_mean(trained.log_prob(moons_test))
    passes(capsys, check.test_nll, nll, trained, moons_test)
    passes(capsys, check.test_nll, float(-np.mean(trained.log_prob(moons_test))), trained, moons_test)
    fails(capsys, check.test_nll, -nll, trained, moons_test, hint="opposite sign")
    fails(capsys, check.test_nll, -tf.reduce_sum(trained.log_prob(moons_test)), trained, moons_test, hint="mean")
    fails(capsys, check.test_nll, -trained.log_prob(moons_test), trained, moons_test, hint="one number")
    fails(capsys, check.test_nll, AlwaysEqual(), trained, moons_test)
    fails(capsys, check.test_nll, ..., trained, moons_test, hint="placeholder")


# --- Whose fault: the student's code raising is theirs, and said so --------------------------------
class Broken(tfb.Bijector):
    def __init__(self):
        super().__init__(forward_min_event_ndims=1, name="broken")

    def _forward(self, z):
        raise ValueError("I am broken")


def test_student_exceptions_are_named_not_blamed_on_the_check(capsys):
    line = fails(capsys, check.affine_bijector, Broken(), hint="bijector.forward(z) raised ValueError: I am broken")
    assert "your code" not in line
    evil = type("Evil\r✔ affine bijector x = z * (1, 0.5) + (0.5, 0.25)", (), {})()
    line = fails(capsys, check.affine_bijector, evil)
    assert "\r" not in line and "\\r" in line, "control characters from the student's objects are escaped"


class NoShape(tfd.MultivariateNormalDiag):
    @property
    def event_shape(self):
        raise RuntimeError("no shape today")


def test_a_property_of_the_students_object_that_raises_is_theirs(capsys):
    fails(capsys, check.base_distribution, NoShape(loc=[0.0, 0.0]), hint="event_shape raised RuntimeError")
