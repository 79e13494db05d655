"""Every flowlab bijector through one harness (tests/bijector_harness.py): round trips both ways, log-dets
against autodiff Jacobians, shapes with batch axes, finite gradients.

A case builds the bijector with random parameters (a new coupling or flow is the identity, which
would hide bugs) and the inputs it is checked on. A bijector's own test file keeps what is
particular to it: its formula against a reference, its tails, its errors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from bijector_harness import TRANSFORMERS, assert_bijective, randomise

import flowlab.bijectors as fb
from flowlab.conditioners.mlp import MLPConditioner
from flowlab.conditioners.resnet import ResNetConditioner
from flowlab.flows import build_glow
from flowlab.flows.multiscale import MultiScale
from flowlab.transformers import (
    SplineTransformer,
    Transformer,
)

CASES: dict[str, Callable[[], tuple[Any, Any, int, dict]]] = {}
COVERED: set[type] = set()


def case(*classes: type):
    """Register a case (``name() -> (bijector, x, event_ndims, options)``) that checks ``classes``."""

    def register(fn):
        CASES[fn.__name__] = fn
        COVERED.update(classes)
        return fn

    return register


def _normal(shape, seed, scale=1.0):
    return (scale * tf.random.stateless_normal(shape, seed=[seed, 1])).numpy()


def _built(bijector, x):
    bijector.forward(tf.constant(x))  # Keras layers build on their first call
    return bijector


# --- elementwise ------------------------------------------------------------------------------------

@case(fb.BatchNormalization)
def batch_normalization_evaluation_mode():
    # Evaluation mode is a fixed affine map per variable (moving statistics, learned gamma and beta): a
    # bijection of each point. Training mode normalises with the batch and is tested in test_batch_norm.py.
    x = _normal([20, 3], 8, 2.0)
    bijector = _built(fb.BatchNormalization(training=False), x)
    layer = bijector.batchnorm
    layer.moving_mean.assign([0.5, -1.0, 2.0])
    layer.moving_variance.assign([4.0, 0.25, 1.5])
    layer.gamma.assign([1.5, 0.7, 2.0])
    layer.beta.assign([0.1, -0.3, 0.0])
    return bijector, x, 1, {"constant_jacobian": True, "atol": 1e-4, "rtol": 1e-4}


@case(fb.Logit)
def logit():
    x = tf.random.stateless_uniform([50], seed=[4, 5], minval=0.001, maxval=0.999).numpy()
    return fb.Logit(), x, 0, {"log_det_atol": 1e-4, "log_det_rtol": 1e-4}


@case(fb.Logit)
def logit_with_alpha():
    x = tf.random.stateless_uniform([50], seed=[4, 5], minval=0.0, maxval=1.0).numpy()
    return fb.Logit(0.05), x, 0, {"log_det_atol": 1e-4, "log_det_rtol": 1e-4}


def _mixture_cdf(family):
    bijector = fb.MixtureCDF([0.3, -0.2, 0.0], [-2.0, 0.5, 1.0], [-0.5, 0.2, -1.0], family=family)
    u = tf.random.stateless_uniform([50], seed=[3, 4], minval=1e-3, maxval=1 - 1e-3).numpy()
    return bijector, np.clip(_normal([50], 1, 1.5), -3.5, 3.5), 0, {"y": u, "atol": 1e-4}


@case(fb.MixtureCDF)
def mixture_cdf_gaussian():
    return _mixture_cdf("gaussian")


@case(fb.MixtureCDF)
def mixture_cdf_logistic():
    return _mixture_cdf("logistic")


@case(fb.LogitMixtureCDF)
def logit_mixture_cdf():
    bijector = fb.LogitMixtureCDF(logits=[0.3, -0.2], locs=[-1.0, 1.0], log_scales=[-1.0, -0.5])
    return bijector, _normal([2, 40], 2, 3.0), 0, {"atol": 1e-4, "log_det_atol": 1e-4}


# --- couplings --------------------------------------------------------------------------------------

@case(fb.AffineCoupling)
def affine_coupling_vector():
    x = _normal([2, 3, 5], 3)  # two batch axes
    layer = fb.AffineCoupling([0.0, 1.0, 1.0, 0.0, 1.0], MLPConditioner(5, hidden_units=(16,)))
    return randomise(_built(layer, x), seed=1), x, 1, {}


@case(fb.AdditiveCoupling)
def additive_coupling_vector():
    x = _normal([6, 4], 4)
    layer = fb.AdditiveCoupling(fb.alternating_mask(4), MLPConditioner(4, hidden_units=(16,), shift_only=True))
    return randomise(_built(layer, x)), x, 1, {"volume_preserving": True}


@case(fb.AffineCoupling)
def affine_coupling_image_checkerboard():
    x = _normal([2, 2, 4, 4, 2], 5)  # two batch axes
    layer = fb.AffineCoupling(fb.checkerboard(4, 4, 2, parity=1), ResNetConditioner(2, filters=4, blocks=1))
    return randomise(_built(layer, x), seed=3), x, 3, {"atol": 1e-4, "log_det_atol": 1e-3}


@case(fb.AdditiveCoupling)
def additive_coupling_image_channels():
    x = _normal([3, 4, 4, 2], 6)
    layer = fb.AdditiveCoupling(fb.channel_mask(4, 4, 2, half=1), ResNetConditioner(2, filters=4, blocks=1))
    return randomise(_built(layer, x), seed=3), x, 3, {"atol": 1e-4, "log_det_atol": 1e-3, "volume_preserving": True}


def _transformer_coupling(transformer):
    x = _normal([8, 4], 7, 2.5)  # spread to reach a spline's identity tails too
    layer = fb.Coupling(fb.alternating_mask(4), MLPConditioner(4, (16,), params_per_dim=transformer.params_per_dim),
                        transformer)
    # Small weights: large raw spline parameters make ill-conditioned (not wrong) float32 inverses.
    return randomise(_built(layer, x), scale=0.2), x, 1, {"atol": 2e-4, "log_det_atol": 2e-4}


@case(fb.Coupling)
def spline_coupling():
    return _transformer_coupling(SplineTransformer(bins=5, bound=3.0))


def _autoregressive_mixture_cdf(dims, family):
    flow = fb.build_autoregressive_mixture_cdf(dims, num_components=3, hidden_units=(16,), family=family)
    flow.log_prob(tf.zeros([1, dims]))  # build the Keras layers
    randomise(flow, add_to=lambda v: v.shape.rank == 1 and "theta1" in v.name)
    u = tf.random.stateless_uniform([16, dims], seed=[3, 4], minval=1e-3, maxval=1 - 1e-3).numpy()
    bijector = flow.bijector.bijector  # the flow holds Invert(AutoregressiveMixtureCDF): x -> z inside
    return bijector, _normal([16, dims], 8, 1.5), 1, {"y": u, "atol": 2e-4, "log_det_atol": 1e-3}


@case(fb.AutoregressiveMixtureCDF)
def autoregressive_mixture_cdf_gaussian():
    return _autoregressive_mixture_cdf(2, "gaussian")


# --- image pieces -----------------------------------------------------------------------------------

@case(fb.Squeeze)
def squeeze():
    return fb.Squeeze(), _normal([2, 3, 4, 2, 1], 9), 3, {"volume_preserving": True, "atol": 0.0, "rtol": 0.0}


@case(fb.ActNorm)
def actnorm_vector():
    x = _normal([8, 3], 10)
    return randomise(fb.ActNorm(3, event_ndims=1)), x, 1, {"constant_jacobian": True}


@case(fb.ActNorm)
def actnorm_image():
    x = _normal([2, 3, 3, 2], 11)
    return randomise(fb.ActNorm(2), seed=1), x, 3, {"constant_jacobian": True}


def _conv1x1(lu):
    conv = fb.InvertibleConv1x1(3, lu_decomposed=lu, seed=2)
    randomise(conv, seed=3, add_to=lambda v: True)  # away from the rotation, where log|det W| = 0
    return conv, _normal([2, 3, 4, 3], 12), 3, {"atol": 1e-4, "rtol": 1e-4, "log_det_atol": 1e-3, "log_det_rtol": 1e-4}


@case(fb.InvertibleConv1x1)
def conv1x1_lu():
    return _conv1x1(True)


@case(fb.InvertibleConv1x1)
def conv1x1_plain():
    return _conv1x1(False)


def _multiscale_of(flow) -> MultiScale:
    return next(b for b in flow.bijector.bijectors if isinstance(b, MultiScale))


@case(MultiScale, fb.ActNorm, fb.InvertibleConv1x1)
def glow():
    flow = build_glow((4, 4, 1), scales=1, steps=1, final_steps=1, filters=4)
    bijector = _multiscale_of(flow)
    x = _normal([2, 4, 4, 1], 14)
    randomise(_built(bijector, x), scale=0.05, add_to=lambda v: True)
    return bijector, x, 3, {"atol": 1e-4, "log_det_atol": 1e-3}


# --- transformers: the elementwise bijectors of couplings and autoregressive layers ------------------



def _transformer_case(name: str, transformer: Transformer) -> None:
    def build():
        params = tf.random.stateless_normal([64, 3, transformer.params_per_dim], seed=[1, 1])
        x = _normal([64, 3], 2, 2.5)  # wide enough for a spline's interval and its identity tails
        return transformer(params), x, 0, {"atol": 2e-4, "log_det_atol": 2e-4, "orientation_preserving": True,
                                           "volume_preserving": name == "additive"}

    build.__name__ = f"transformer_{name}"
    case()(build)


for _name, _transformer in TRANSFORMERS.items():
    _transformer_case(_name, _transformer)


# --- flows for variational inference (float64, parameters drawn large, one set per point) -----------

def _vi(make):
    rng = np.random.default_rng(1)
    n = lambda *shape: rng.normal(0.0, 3.0, size=(12, *shape))  # noqa: E731 - 12 parameter draws
    x = rng.normal(0.0, 2.0, size=(12, 3))
    # The constrained forms stay invertible and orientation-preserving for any parameters.
    return make(n), x, 1, {"atol": 1e-6, "log_det_atol": 1e-6, "orientation_preserving": True}


@case(fb.Planar)
def planar():
    return _vi(lambda n: fb.Planar(n(3), n(3), n()))


@case(fb.Radial)
def radial():
    return _vi(lambda n: fb.Radial(n(3), n(), n()))


@case(fb.OrthogonalSylvester, fb.Sylvester)
def orthogonal_sylvester():
    return _vi(lambda n: fb.OrthogonalSylvester(n(3, 2), n(2, 2), n(2, 2), n(2)))


@case(fb.HouseholderSylvester)
def householder_sylvester():
    return _vi(lambda n: fb.HouseholderSylvester(n(2, 3), n(3, 3), n(3, 3), n(3)))


@case(fb.TriangularSylvester)
def triangular_sylvester():
    return _vi(lambda n: fb.TriangularSylvester(n(3, 3), n(3, 3), n(3), reverse=True))


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_bijector_is_a_bijection_with_an_exact_log_det(name):
    bijector, x, event_ndims, options = CASES[name]()
    assert_bijective(bijector, x, event_ndims, **options)


def test_every_exported_bijector_has_a_case():
    exported = {getattr(fb, name) for name in fb.__all__}
    bijectors = {c for c in exported if isinstance(c, type) and issubclass(c, tfp.bijectors.Bijector)}
    assert bijectors and bijectors - COVERED == set()


def test_multiscale_validate_args_checks_finiteness_and_run_time_shape():
    # One level that only unsqueezes (4, 4, 1) <-> (2, 2, 4): the check, not the layers, is under test.
    def multiscale(validate_args):
        return MultiScale((4, 4, 1), [tfp.bijectors.Invert(fb.Squeeze())], tfp.bijectors.Identity(),
                          validate_args=validate_args)
    image = np.full([1, 4, 4, 1], np.nan, np.float32)
    with pytest.raises(tf.errors.InvalidArgumentError, match="multiscale: the image holds NaN"):
        multiscale(True).inverse(image)
    with pytest.raises(tf.errors.InvalidArgumentError, match="multiscale: the latent holds NaN"):
        multiscale(True).forward(image)
    inverse = tf.function(multiscale(True).inverse, input_signature=[tf.TensorSpec([None, None, None, 1])])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"needs shape \(\.\.\., 4, 4, 1\)"):
        inverse(tf.zeros([1, 8, 2, 1]))
    assert inverse(tf.zeros([3, 4, 4, 1])).shape == (3, 4, 4, 1)
    # validate_args=False (the default): no check, NaN passes through.
    assert np.isnan(multiscale(False).inverse(image).numpy()).all()
