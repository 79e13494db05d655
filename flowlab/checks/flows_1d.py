"""Checks for lab 01, 1-D CDF flows: the change of variables, composing with an inverse CDF, sampling.

Every call into the student's objects runs inside :func:`student_code`; the expected numbers are
computed on our side, from flowlab's own bijectors, at fixed points (no random draws).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from flowlab.bijectors.mixture_cdf import MixtureCDF
from flowlab.checks.core import CheckFailed, check, need, need_function, printable, require, student_code, to_numpy
from flowlab.checks.held_out import cached, held_out
from flowlab.datasets.bimodal import bimodal_log_prob, load_bimodal

__all__ = ["flow_log_prob", "gaussian_flow", "inverse_cdf_sampler", "trained_cdf_flows", "measure_1d",
           "MASS_TOLERANCE", "NLL_MARGIN"]

tfd, tfb = tfp.distributions, tfp.bijectors

# Points the checks evaluate at, fixed so that verdicts never depend on a random draw.
_X = np.linspace(-3.0, 3.0, 13, dtype=np.float32)
# Uniforms the sampler is given: out of order on purpose (a sampler that sorts or redraws fails).
_U = np.random.default_rng(7).permutation(np.linspace(0.02, 0.98, 49)).astype(np.float32)
# The trained-flow check integrates exp(log p) over this grid (the data lies within [-3, 3]).
_GRID = np.linspace(-12.0, 12.0, 9601, dtype=np.float32)

# A trained flow's density must integrate to 1 within this (the trapezoid rule on _GRID is exact to
# 1e-6 for these mixtures), and score within NLL_MARGIN nats of the true density on the test set.
# bench/check_margins.md (fast mode, 5 seeds): correct answers land 0.0001-0.0065 nats above the truth;
# untrained flows 0.31-0.68 above; broken log-likelihoods hold a mass of 0.21 to 24 instead of 1.
MASS_TOLERANCE = 0.02
NLL_MARGIN = 0.1


def _reference_cdf() -> MixtureCDF:
    return MixtureCDF(logits=[0.2, -0.1, 0.0], locs=[-1.5, 0.0, 1.2], log_scales=[-0.8, -0.2, -0.5])


def _fresh(values: np.ndarray = _X) -> np.ndarray:
    # A new array every call: TFP caches bijector results by input tensor.
    return values.copy()


def _normal_quantile(u: np.ndarray) -> np.ndarray:
    return to_numpy(tfd.Normal(np.float32(0.0), np.float32(1.0)).quantile(np.asarray(u, np.float32)))


def _close(a: np.ndarray, b: np.ndarray, atol: float = 1e-4) -> bool:
    return bool(a.shape == b.shape and np.all(np.isfinite(a)) and np.allclose(a, b, atol=atol))


@check("change-of-variables log-likelihood")
def flow_log_prob(fn: Any) -> None:
    """fn(x, flow, base) = log p_Z(flow(x)) + log |flow'(x)|, for any flow x -> z and base."""
    need_function(fn, "flow_log_prob")
    cdf = _reference_cdf()
    cases = [
        ("a Beta(5, 5) base", cdf, tfd.Beta(5.0, 5.0)),
        ("a N(0, 1) base", tfb.Chain([tfb.Invert(tfb.NormalCDF()), cdf]), tfd.Normal(0.0, 1.0)),
        ("a Uniform(0, 1) base", cdf, tfd.Uniform(0.0, 1.0)),
        ("a N(0, 1) base and an affine flow", tfb.Chain([tfb.Shift(-0.5), tfb.Scale(2.5)]), tfd.Normal(0.0, 1.0)),
    ]
    for name, flow, base in cases:
        with student_code("flow_log_prob(x, flow, base)"):
            result = fn(tf.constant(_fresh()), flow, base)
        got = to_numpy(result, "flow_log_prob(x, flow, base)")
        require(got.shape == _X.shape,
                f"with {name}, flow_log_prob of {len(_X)} points has shape {got.shape}; expected ({len(_X)},): "
                "one log-likelihood per point")
        base_term = to_numpy(base.log_prob(flow.forward(_fresh())))
        log_det = to_numpy(flow.forward_log_det_jacobian(_fresh(), event_ndims=0))
        expected = base_term + log_det
        if _close(got, -expected):
            raise CheckFailed("the sign is flipped: return the log-likelihood, not its negative")
        if _close(got, base_term):
            raise CheckFailed(f"with {name} the log-det term is missing: add log |f'(x)| = "
                              "flow.forward_log_det_jacobian(x, event_ndims=0)")
        if _close(got, base_term - log_det):
            raise CheckFailed("the log-det enters with a minus sign: where the flow stretches space (f'(x) large) a "
                              "short interval of x holds much probability, so the density goes up: add log |f'(x)|")
        inverse_term = to_numpy(base.log_prob(flow.inverse(_fresh()))) if name.endswith("affine flow") else None
        if inverse_term is not None and np.all(np.isfinite(inverse_term)) and (
                _close(got, inverse_term + log_det) or _close(got, inverse_term - log_det)
                or _close(got, inverse_term)):
            raise CheckFailed("the base is scored at flow.inverse(x): the flow maps data to the base, z = f(x) = "
                              "flow.forward(x)")
        require(_close(got, expected),
                f"with {name} the result is not log p_Z(f(x)) + log |f'(x)| with z = f(x) = flow.forward(x)")
    # model.fit runs flow_log_prob inside a compiled TensorFlow graph: NumPy calls fail there.
    flow, base = cases[0][1], cases[0][2]
    try:
        with student_code("flow_log_prob(x, flow, base) inside a tf.function"):
            traced = tf.function(lambda x: fn(x, flow, base))(tf.constant(_fresh()))
    except CheckFailed as failed:
        raise CheckFailed(f"flow_log_prob gives the right numbers but fails inside model.fit, which runs it as a "
                          f"TensorFlow graph ({failed}): use TensorFlow operations and the flow's and base's methods, "
                          "not NumPy") from None
    require(_close(to_numpy(traced, "flow_log_prob inside a tf.function"),
                   to_numpy(base.log_prob(flow.forward(_fresh())))
                   + to_numpy(flow.forward_log_det_jacobian(_fresh(), event_ndims=0))),
            "flow_log_prob gives different numbers inside a tf.function (as model.fit runs it): use TensorFlow "
            "operations, not NumPy or Python-side state")


@check("composition: data → uniform → Gaussian")
def gaussian_flow(bijector: Any, cdf: Any) -> None:
    """bijector(x) = Φ⁻¹(cdf(x)): the mixture CDF, then the standard normal's inverse CDF."""
    need(bijector, "to_gaussian")
    require(isinstance(bijector, tfb.Bijector),
            "to_gaussian should be a TFP bijector (built from tfb.NormalCDF, tfb.Invert, "
            f"tfb.Chain and cdf_gaussian), got {printable(type(bijector).__name__)}")
    need(cdf, "cdf_gaussian", MixtureCDF)
    u = to_numpy(cdf.forward(_fresh()), "cdf_gaussian.forward(x)")
    expected = _normal_quantile(u)
    with student_code("to_gaussian.forward(x)"):
        result = bijector.forward(_fresh())
    got = to_numpy(result, "to_gaussian.forward(x)")
    require(got.shape == _X.shape, f"to_gaussian maps {len(_X)} points to shape {got.shape}; expected ({len(_X)},)")
    if _close(got, u, atol=1e-5):
        raise CheckFailed("this is still the CDF, with values in (0, 1): compose it with the Gaussian inverse CDF "
                          "Φ⁻¹ = tfb.Invert(tfb.NormalCDF())")
    with np.errstate(all="ignore"):
        phi_inv = _normal_quantile(_X)  # NaN outside [0, 1]: Φ⁻¹ is defined on (0, 1) only
        cdf_of_phi_inv = to_numpy(cdf.forward(phi_inv.astype(np.float32)))
    finite = np.isfinite(got)
    if finite.any() and not finite.all():
        for candidate, hint in [
            (phi_inv, "this is Φ⁻¹ alone, applied to x itself (defined only on (0, 1)): first map x to (0, 1) with the "
                      "mixture CDF cdf_gaussian, then apply Φ⁻¹"),
            (cdf_of_phi_inv, "the order is reversed: this applies Φ⁻¹ to x first. tfb.Chain applies its list right to "
                             "left, so cdf_gaussian goes last in the list (it is applied first)"),
        ]:
            both = finite & np.isfinite(candidate)
            if (both.any() and np.allclose(got[both], candidate[both], atol=1e-4)
                    and not np.isfinite(candidate[~finite]).any()):
                raise CheckFailed(hint)
    normal_cdf_of_u = to_numpy(tfd.Normal(np.float32(0.0), np.float32(1.0)).cdf(u.astype(np.float32)))
    if _close(got, normal_cdf_of_u, atol=1e-5):
        raise CheckFailed("tfb.NormalCDF() is Φ, which maps the real line to (0, 1); you need its inverse Φ⁻¹ = "
                          "tfb.Invert(tfb.NormalCDF()), which maps (0, 1) onto the real line")
    require(bool(np.all(finite)),
            "to_gaussian gives NaN or infinite values at some x: it should be Φ⁻¹(cdf_gaussian(x)), "
            "the mixture CDF first, then the Gaussian inverse CDF")
    require(_close(got, expected),
            "to_gaussian(x) should be Φ⁻¹(cdf_gaussian(x)), with the mixture CDF cdf_gaussian applied first")
    with student_code("to_gaussian.forward_log_det_jacobian(x, event_ndims=0)"):
        result = bijector.forward_log_det_jacobian(_fresh(), event_ndims=0)
    log_det = to_numpy(result, "to_gaussian.forward_log_det_jacobian(x, event_ndims=0)")
    expected_log_det = (to_numpy(cdf.forward_log_det_jacobian(_fresh(), 0))
                        - to_numpy(tfd.Normal(0.0, 1.0).log_prob(expected.astype(np.float32))))
    require(_close(log_det, expected_log_det, atol=1e-3),
            "the log-det is not log p_F(x) - log φ(z): build to_gaussian from bijectors (tfb.Chain) "
            "so TFP adds them up")
    with student_code("to_gaussian.inverse(z)"):
        result = bijector.inverse(expected.astype(np.float32))
    back = to_numpy(result, "to_gaussian.inverse(z)")
    require(_close(back, _X, atol=1e-3), "to_gaussian.inverse(to_gaussian(x)) does not give x back")


def _sampled(fn: Callable[..., Any], cdf: Any, u: np.ndarray) -> np.ndarray:
    with student_code("sample_by_inversion(cdf, u)"):
        result = fn(cdf, tf.constant(u))
    x = to_numpy(result, "sample_by_inversion(cdf, u)")
    require(x.shape == u.shape, f"sample_by_inversion(cdf, u) for {len(u)} uniforms has shape {x.shape}; expected "
            f"({len(u)},): one sample x = F⁻¹(u) per uniform u")
    return x


@check("sampling by inverting the CDF")
def inverse_cdf_sampler(fn: Any, cdf: Any) -> None:
    """fn(cdf, u) = F⁻¹(u): the point whose CDF value is u, for each of the uniforms given."""
    need_function(fn, "sample_by_inversion")
    need(cdf, "cdf_uniform", MixtureCDF)
    for name, mixture in [("a mixture CDF of ours", _reference_cdf()), ("your trained cdf_uniform", cdf)]:
        x = _sampled(fn, mixture, _fresh(_U))
        if _close(x, _U, atol=1e-6):
            raise CheckFailed("this returns u unchanged: the sample is x = F⁻¹(u), the point where the CDF reaches u")
        forward_u = to_numpy(mixture.forward(_fresh(_U)))
        if _close(x, forward_u, atol=1e-5):
            raise CheckFailed("this is F(u), the CDF run forwards: sampling runs the flow backwards, x = F⁻¹(u) = "
                              "cdf.inverse(u)")
        if _close(x, _normal_quantile(_U), atol=1e-4):
            raise CheckFailed("this is the standard normal's inverse CDF Φ⁻¹(u): "
                              "invert the mixture's CDF, x = F⁻¹(u) = "
                              "cdf.inverse(u)")
        require(bool(np.all(np.isfinite(x))), f"with {name}, some samples are NaN or infinite")
        got_u = to_numpy(mixture.forward(x.astype(np.float32)))
        if not _close(got_u, _U, atol=2e-4):
            order = np.argsort(_U)
            monotone = bool(np.all(np.diff(x[order]) >= 0))
            raise CheckFailed(
                "the samples are not F⁻¹ of the uniforms you were given: F(x) should give u back. "
                + ("Use the u passed in, not a fresh draw (cdf.inverse(u), not sampling a distribution): inverse-CDF "
                   "sampling turns each given uniform into one sample" if not monotone else
                   "Invert the CDF that is passed in: x = cdf.inverse(u)"))


def measure_1d(log_prob: Callable[[tf.Tensor], Any], x_test: Any) -> tuple[float, float]:
    """``(mass, test NLL)`` of a 1-D density given by ``log_prob``: the numbers the trained-flow check uses.

    ``mass`` is the trapezoid integral of ``exp(log_prob)`` over [-12, 12]; a correct density on
    the lab's data holds 1 there to within 1e-6.
    """
    with student_code("the trained model on a grid of x"):
        on_grid = log_prob(tf.constant(_fresh(_GRID)))
    grid_values = to_numpy(on_grid, "the trained model's log-likelihood on a grid")
    require(grid_values.shape == _GRID.shape, f"the trained model returns shape {grid_values.shape} for "
            f"{len(_GRID)} points; expected ({len(_GRID)},): one log-likelihood per point")
    with np.errstate(all="ignore"):
        density = np.exp(np.where(np.isnan(grid_values), np.inf, np.minimum(grid_values, 700.0)))
    mass = float(np.trapezoid(density, _GRID.astype(np.float64)))
    x = np.asarray(x_test, np.float32)
    with student_code("the trained model on the test set"):
        on_test = log_prob(tf.constant(x))
    test_values = to_numpy(on_test, "the trained model's log-likelihood on the test set")
    require(test_values.shape == x.shape, f"the trained model returns shape {test_values.shape} for {len(x)} test "
            f"points; expected ({len(x)},)")
    return mass, -float(np.mean(test_values))


def _is_the_labs_flow(model: Any, name: str, x: np.ndarray) -> None:
    """The model is the lab's FlowModel: its output is log p_Z(f(x)) + log |f'(x)| of its own flow and
    base, the derivative taken here by autodiff."""
    with student_code(f"the {name} model's flow and base"):
        flow, base = getattr(model, "flow", None), getattr(model, "base", None)
    require(isinstance(flow, tfb.Bijector) and isinstance(base, tfd.Distribution),
            f"the {name} model is not the lab's FlowModel (a flow and a base, trained by the fit cell): the check "
            "measures the model built from your answers, not another density put in its place")
    points = tf.constant(x)
    with student_code(f"the {name} model's flow and base on test points"):
        with tf.GradientTape() as tape:
            tape.watch(points)
            z = flow.forward(points)
        slope = to_numpy(tape.gradient(z, points), "f'(x)")
        reference = to_numpy(base.log_prob(z), "log p_Z(f(x))") + np.log(np.abs(slope))
        claimed = to_numpy(model(tf.constant(x)), f"the {name} model's log-likelihood")
    require(claimed.shape == reference.shape and bool(np.allclose(claimed, reference, atol=1e-3)),
            f"the {name} model's log-likelihood is not log p_Z(f(x)) + log |f'(x)| of its own flow and base: "
            "flow_log_prob must compute the change of variables of the flow and base it is given")


@cached
def bimodal_test_set() -> np.ndarray:
    """The lab's held-out points, as its data cell makes them."""
    return load_bimodal(5000, 2000, seed=0)[1]


@check("the trained CDF flows fit the data")
def trained_cdf_flows(models: Any, x_test: Any) -> None:
    """Each trained model's density integrates to 1 and scores within NLL_MARGIN of the true density."""
    need(models, "models (the trained flows, built from your answers above)")
    require(isinstance(models, dict) and len(models) > 0, f"models should be a dict of trained models, got "
            f"{printable(type(models).__name__)}")
    x = held_out(x_test, "X_test", bimodal_test_set).astype(np.float32)
    true_nll = -float(np.mean(bimodal_log_prob(x)))
    for name in list(models):
        model = models[name]
        need(model, f"the {printable(name)} model")
        require(callable(model), f"the {printable(name)} model should be callable (a Keras model), got "
                f"{printable(type(model).__name__)}")
        mass, nll = measure_1d(model, x)
        require(bool(np.isfinite(mass)) and abs(mass - 1.0) < MASS_TOLERANCE,
                f"the {printable(name)}-base model's density does not integrate to 1 over x, so it is not a density: "
                "the change of variables needs both terms, log p_Z(f(x)) + log |f'(x)|, and the flow must map the "
                "data onto the whole support of its base (for N(0, 1): Φ⁻¹ after the CDF)")
        _is_the_labs_flow(model, printable(name), x[:64])
        require(bool(np.isfinite(nll)) and nll < true_nll + NLL_MARGIN,
                f"the {printable(name)}-base model does not fit the test data (its NLL is far above the true "
                "density's): was it trained (the training cell run after your answers), "
                "with flow_log_prob as its loss?")
