"""Checks for lab 01, 1-D CDF flows: the change of variables, composing with an inverse CDF, sampling."""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from flowlab.bijectors.mixture_cdf import MixtureCDF
from flowlab.checks.core import CheckFailed, check, is_stub, require, to_numpy

__all__ = ["flow_log_prob", "gaussian_flow", "inverse_cdf_samples"]

tfd, tfb = tfp.distributions, tfp.bijectors

# Points the checks evaluate at, fixed so that verdicts never depend on a random draw.
_X = np.linspace(-3.0, 3.0, 13, dtype=np.float32)


def _reference_cdf() -> MixtureCDF:
    return MixtureCDF(logits=[0.2, -0.1, 0.0], locs=[-1.5, 0.0, 1.2], log_scales=[-0.8, -0.2, -0.5])


def _fresh() -> np.ndarray:
    # A new array every call: TFP caches bijector results by input tensor.
    return _X.copy()


@check("change-of-variables log-likelihood")
def flow_log_prob(fn: Any) -> None:
    """fn(x, flow, base) = log p_Z(flow(x)) + log |flow'(x)|, for any flow x -> z and base."""
    if is_stub(fn):
        raise CheckFailed("flow_log_prob is still a placeholder: fill in the TODO above")
    require(callable(fn), f"flow_log_prob should be a function, got {type(fn).__name__}")
    cdf = _reference_cdf()
    cases = [
        ("a Beta(5, 5) base", cdf, tfd.Beta(5.0, 5.0)),
        ("a N(0, 1) base", tfb.Chain([tfb.Invert(tfb.NormalCDF()), cdf]), tfd.Normal(0.0, 1.0)),
        ("a Uniform(0, 1) base", cdf, tfd.Uniform(0.0, 1.0)),
    ]
    for name, flow, base in cases:
        got = to_numpy(fn(tf.constant(_fresh()), flow, base), "flow_log_prob(x, flow, base)")
        require(got.shape == _X.shape,
                f"with {name}, flow_log_prob of {len(_X)} points has shape {got.shape}; expected ({len(_X)},)")
        base_term = to_numpy(base.log_prob(flow.forward(_fresh())))
        log_det = to_numpy(flow.forward_log_det_jacobian(_fresh(), event_ndims=0))
        expected = base_term + log_det
        if np.allclose(got, -expected, atol=1e-4):
            raise CheckFailed("the sign is flipped: return the log-likelihood, not its negative")
        if np.allclose(got, base_term, atol=1e-4):
            raise CheckFailed(f"with {name} the log-det term is missing: add log |f'(x)| = "
                              "flow.forward_log_det_jacobian(x, event_ndims=0)")
        if np.allclose(got, base_term - log_det, atol=1e-4):
            raise CheckFailed("the log-det enters with a plus sign: the flow stretches space where f'(x) is large, "
                              "so density goes up there")
        require(bool(np.allclose(got, expected, atol=1e-4)),
                f"with {name} the result is not log p_Z(f(x)) + log |f'(x)| with z = f(x) = flow.forward(x)")


@check("composition: data → uniform → Gaussian")
def gaussian_flow(bijector: Any, cdf: Any) -> None:
    """bijector(x) = Φ⁻¹(cdf(x)): the mixture CDF, then the standard normal's inverse CDF."""
    if is_stub(bijector):
        raise CheckFailed("to_gaussian is still a placeholder: fill in the TODO above")
    require(isinstance(bijector, tfb.Bijector), f"to_gaussian should be a TFP bijector, got {type(bijector).__name__}")
    u = to_numpy(cdf.forward(_fresh()), "cdf_gaussian.forward(x)")
    expected = to_numpy(tfd.Normal(0.0, 1.0).quantile(u.astype(np.float32)))
    got = to_numpy(bijector.forward(_fresh()), "to_gaussian.forward(x)")
    require(got.shape == _X.shape, f"to_gaussian maps {len(_X)} points to shape {got.shape}; expected ({len(_X)},)")
    if np.allclose(got, u, atol=1e-5):
        raise CheckFailed("this is still the CDF, with values in (0, 1): compose it with the Gaussian inverse CDF "
                          "Φ⁻¹ = tfb.Invert(tfb.NormalCDF())")
    if not np.all(np.isfinite(got)):
        raise CheckFailed("to_gaussian gives NaN: tfb.Chain applies its list right to left, so the CDF goes last in "
                          "the list (it is applied first)")
    require(bool(np.allclose(got, expected, atol=1e-4)),
            "to_gaussian(x) should be Φ⁻¹(cdf_gaussian(x)), with the mixture CDF cdf_gaussian applied first")
    log_det = to_numpy(bijector.forward_log_det_jacobian(_fresh(), event_ndims=0))
    expected_log_det = to_numpy(cdf.forward_log_det_jacobian(_fresh(), 0)) - to_numpy(tfd.Normal(0.0, 1.0).log_prob(expected))
    require(bool(np.allclose(log_det, expected_log_det, atol=1e-3)),
            "the log-det is not log p_F(x) - log φ(z): build to_gaussian from bijectors (tfb.Chain) so TFP adds them up")
    back = to_numpy(bijector.inverse(expected.astype(np.float32)), "to_gaussian.inverse(z)")
    require(bool(np.allclose(back, _X, atol=1e-3)), "to_gaussian.inverse(to_gaussian(x)) does not give x back")


@check("sampling by inverting the CDF")
def inverse_cdf_samples(samples: Any, cdf: Any, x_train: Any) -> None:
    """samples = F⁻¹(u) with u ~ Uniform(0, 1): new points, distributed as the flow's density."""
    s = to_numpy(samples, "samples")
    require(s.ndim == 1, f"samples should be a 1-D array of numbers, got shape {s.shape}")
    require(len(s) >= 1000, f"draw at least 1000 samples, got {len(s)}")
    require(bool(np.all(np.isfinite(s))), "some samples are NaN or infinite: keep u strictly inside (0, 1)")
    train = np.asarray(x_train, np.float32)
    require(float(np.mean(np.isin(s.astype(np.float32), train))) < 0.1,
            "these are training points: sampling draws new points, x = F⁻¹(u) with fresh u ~ Uniform(0, 1)")
    require(bool(np.ptp(s) > 0), "all samples are the same number: draw u uniformly and invert the CDF, cdf_uniform.inverse(u)")
    u = np.sort(to_numpy(cdf.forward(s.astype(np.float32))))
    n = len(u)
    grid = np.arange(1, n + 1) / n
    ks = max(np.max(grid - u), np.max(u - (grid - 1.0 / n)))
    require(bool(ks < 2.5 / np.sqrt(n)),
            "the samples are not distributed as the flow: F(samples) should be uniform. Invert the trained CDF: "
            "samples = cdf_uniform.inverse(u) with u ~ Uniform(0, 1)")
