r"""Variational inference with normalizing flows, trained by reverse KL with Keras ``model.fit``.

Density estimation (the other labs) fits :math:`p(x)` to samples.  Variational inference has no
samples, only an unnormalised target :math:`\log\tilde p(z) = \log p(z) + \log Z`, and fits a flow
:math:`q` by minimising the *reverse* KL,

.. math::

    \mathrm{KL}(q\,\Vert\,p) = \mathbb E_{q}\big[\log q(z) - \log\tilde p(z)\big] + \log Z
    = -\mathrm{ELBO} + \log Z ,

estimated by Monte Carlo from reparameterised samples :math:`z = f(z_0)`, :math:`z_0\sim q_0`, with
:math:`\log q(z) = \log q_0(z_0) - \sum_k \log\lvert\det J_{f_k}\rvert` (:func:`negative_elbo`).
:class:`ReverseKL` is a Keras model whose output is that estimate; :func:`fit_variational` trains it
with :func:`flowlab.training.fit` on a dummy input whose length only sets the number of steps, so
callbacks, the progress bar, the NaN guard and ``tf.distribute`` work as for density training.

The amortised form is the flow-VAE of Rezende & Mohamed (:class:`FlowVAE`): the encoder gives
:math:`q_0(z_0\mid x)` *and* the parameters of :math:`K` flows, and the loss per data point is the
free energy

.. math::

    \mathcal F(x) = \mathbb E_{q_0}\Big[\log q_0(z_0) - \sum_{k=1}^K \log\lvert\det J_{f_k}(z_{k-1})\rvert
    - \log p(z_K) - \log p(x\mid z_K)\Big]
    = \underbrace{-\mathbb E\log p(x\mid z_K)}_{\text{reconstruction}} + \underbrace{\mathrm{KL}(q_K\Vert p)}_{\text{estimated}}

(:func:`flow_vae_loss`).  Example::

    q = build_vi_flow("planar", dims=2, n_flows=8)
    model, history = fit_variational(q, energy_log_prob("U1"), steps=2000)
    kl = exact_kl(q, energy_log_prob("U1"), log_normalizer("U1"))
"""  # noqa: E501

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from flowlab import training
from flowlab.bijectors.planar import Planar
from flowlab.bijectors.radial import Radial
from flowlab.bijectors.sylvester import HouseholderSylvester, OrthogonalSylvester, TriangularSylvester
from flowlab.validation import integer

__all__ = [
    "FLOW_TYPES",
    "IAF_LOG_SCALE_BOUND",
    "FlowVAE",
    "ReverseKL",
    "build_vi_flow",
    "exact_kl",
    "feature_kl",
    "fit_variational",
    "flow_vae_loss",
    "free_energy",
    "lecture_data",
    "negative_elbo",
    "sample_and_log_prob",
]

tfd, tfb = tfp.distributions, tfp.bijectors

FLOW_TYPES = ("planar", "radial", "orthogonal", "householder", "triangular", "iaf")
# Each IAF layer's log-scale is softly bounded to (-1, 1). With free log-scales a K = 32 IAF trained by
# reverse KL diverged (its loss a thousand times its first value) on U1 at Adam 2e-3 and on U3 and U4
# even at 5e-4; bounded by 2 it still diverged on U3; bounded by 1 it trains at 2e-3 (bench/variational.md).
IAF_LOG_SCALE_BOUND = 1.0

LogProb = Callable[[tf.Tensor], tf.Tensor]


def _fused_layers(q: tfd.Distribution) -> list[Any] | None:
    """The bijectors of ``q`` in the order they act, if every one has ``forward_and_log_det``."""
    if not isinstance(q, tfd.TransformedDistribution):
        return None
    stack, layers = [q.bijector], []
    while stack:
        b = stack.pop()
        if isinstance(b, tfb.Composition) and type(b).__name__.endswith("Chain"):
            stack.extend(b.bijectors)  # Chain acts right to left: the last pushed is popped first
        elif hasattr(b, "forward_and_log_det"):
            layers.append(b)
        else:
            return None
    return layers


def sample_and_log_prob(q: tfd.Distribution, n: int, seed: Any = None) -> tuple[tf.Tensor, tf.Tensor]:
    """``n`` reparameterised samples of ``q`` and their log-density, in one pass through the flow.

    For a transformed distribution this is :math:`z = f(z_0)`, :math:`\\log q_0(z_0) - \\log|\\det J_f(z_0)|`:
    no inverse is needed, so an IAF (whose inverse is sequential) costs one pass.  Chains of flowlab's
    VI flows go through their fused ``forward_and_log_det`` (a graph half the size to trace).
    """
    layers = _fused_layers(q)
    if layers is None:
        return q.experimental_sample_and_log_prob(n, seed=seed)
    z = q.distribution.sample(n, seed=seed)
    log_q = q.distribution.log_prob(z)
    for layer in layers:
        z, log_det = layer.forward_and_log_det(z)
        log_q -= log_det
    return z, log_q


def negative_elbo(q: tfd.Distribution, target_log_prob: LogProb, n_samples: int) -> tf.Tensor:
    """Monte-Carlo estimate of :math:`\\mathbb E_q[\\log q(z) - \\log\\tilde p(z)] = \\mathrm{KL}(q\\Vert p) - \\log Z`."""  # noqa: E501
    z, log_q = sample_and_log_prob(q, n_samples)
    return tf.reduce_mean(log_q - target_log_prob(z))


def free_energy(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    """Keras loss for :class:`ReverseKL` and :class:`FlowVAE`: the model's output is already the loss."""
    del y_true
    return y_pred


class ReverseKL(tf.keras.Model):
    """A Keras model whose output is the negative ELBO of ``q`` against ``target_log_prob``.

    Its input is a dummy (a batch of anything): each call draws ``n_samples`` fresh samples of ``q``,
    so a training "epoch" over a dummy array of length ``steps`` with batch size 1 is ``steps``
    stochastic gradient steps.  ``estimator(q, log_prob, n_samples)`` computes the estimate
    (:func:`negative_elbo` by default; the lab passes the student's).  ``annealing_steps > 0``
    multiplies the target by :math:`\\beta_t = \\min(1, 0.01 + t/T)` (Rezende & Mohamed's schedule),
    which lets the flow spread over all modes before the target's full weight pulls it in.
    """

    def __init__(self, q: tfd.Distribution, target_log_prob: LogProb, n_samples: int = 256,
                 estimator: Callable[..., tf.Tensor] | None = None, annealing_steps: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(q, tfd.Distribution):
            raise TypeError(f"ReverseKL needs a TFP distribution q, got {type(q).__name__}")
        if not callable(target_log_prob):
            raise TypeError(f"target_log_prob must be a function z -> log p~(z), got {type(target_log_prob).__name__}")
        self.n_samples = integer(n_samples, "n_samples")
        self.annealing_steps = integer(annealing_steps, "annealing_steps", minimum=0)
        self.q = q
        self.target_log_prob = target_log_prob
        self.estimator = estimator or negative_elbo

    def _beta(self) -> tf.Tensor:
        if not self.annealing_steps or self.optimizer is None:
            return tf.constant(1.0)
        t = tf.cast(self.optimizer.iterations, tf.float32)
        return tf.minimum(1.0, 0.01 + t / float(self.annealing_steps))

    def call(self, x: tf.Tensor) -> tf.Tensor:
        return self._estimate(x)

    @tf.autograph.experimental.do_not_convert  # see FlowVAE._free_energy
    def _estimate(self, x: tf.Tensor) -> tf.Tensor:
        beta = self._beta()
        target = self.target_log_prob if not self.annealing_steps else (lambda z: beta * self.target_log_prob(z))
        loss = tf.convert_to_tensor(self.estimator(self.q, target, self.n_samples))
        return tf.fill(tf.shape(x)[:1], tf.cast(tf.reshape(loss, []), tf.float32))


def fit_variational(
    q: tfd.Distribution,
    target_log_prob: LogProb,
    *,
    steps: int,
    epochs: int = 1,
    n_samples: int = 256,
    learning_rate: float = 1e-3,
    global_clipnorm: float | None = 10.0,
    estimator: Callable[..., tf.Tensor] | None = None,
    annealing_steps: int = 0,
    callbacks: Iterable[tf.keras.callbacks.Callback] = (),
    verbose: Any = "auto",
    strategy: tf.distribute.Strategy | None = None,
) -> tuple[ReverseKL, tf.keras.callbacks.History]:
    """Fit ``q`` to ``exp(target_log_prob)`` by reverse KL: ``epochs x steps`` Adam steps; ``(model, history)``.

    ``history.history["loss"]`` is the negative ELBO per epoch (the mean over its steps).  Under a
    ``tf.distribute`` strategy, build ``q`` inside ``strategy.scope()`` and pass ``strategy``.
    Training stops with :class:`flowlab.training.TrainingDiverged` if the loss turns NaN.
    """
    steps = integer(steps, "steps")
    scope = strategy.scope() if strategy is not None else _null()
    with scope:
        model = ReverseKL(q, target_log_prob, n_samples, estimator, annealing_steps, name="reverse_kl")
        model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate, global_clipnorm=global_clipnorm),
                      loss=free_energy)
    dummy = np.zeros((steps, 1), np.float32)  # only its length matters: one step per row
    return training.fit(model, dummy, epochs=epochs, batch_size=1, callbacks=callbacks, verbose=verbose,
                        shuffle=False, strategy=strategy)


def _null() -> Any:
    from contextlib import nullcontext

    return nullcontext()


def exact_kl(q: tfd.Distribution, target_log_prob: LogProb, log_z: float, n_samples: int = 20000,
             seed: int = 0) -> float:
    """:math:`\\mathrm{KL}(q\\Vert p)` in nats: the Monte-Carlo negative ELBO plus the exact ``log_z``.

    With 20,000 samples the Monte-Carlo standard error is about 0.01 nats for a flow near its target.
    """
    z, log_q = sample_and_log_prob(q, n_samples, seed=seed)
    gap = np.asarray(log_q, np.float64) - np.asarray(target_log_prob(z), np.float64)
    return float(np.mean(gap) + log_z)


# --- Flows with free parameters (one target) -----------------------------------------------------
def _variable(rng: np.random.Generator, shape: Sequence[int], scale: float, name: str) -> tf.Variable:
    return tf.Variable(rng.normal(0.0, scale, size=shape).astype(np.float32), name=name)


def _flow_layers(kind: str, dims: int, n_flows: int, rng: np.random.Generator) -> list[tfb.Bijector]:
    layers: list[tfb.Bijector] = []
    for k in range(n_flows):
        def v(shape: Sequence[int], scale: float, name: str, k: int = k) -> tf.Variable:
            return _variable(rng, shape, scale, f"{name}_{k}")

        if kind == "planar":
            layers.append(Planar(v([dims], 1.0, "w"), v([dims], 0.1, "u"), v([], 0.1, "b")))
        elif kind == "radial":
            layers.append(Radial(v([dims], 1.0, "z0"), v([], 0.1, "alpha"), v([], 0.1, "beta")))
        elif kind in ("orthogonal", "householder", "triangular"):
            r, r_tilde, b = v([dims, dims], 0.1, "r"), v([dims, dims], 0.1, "r_tilde"), v([dims], 0.1, "b")
            if kind == "orthogonal":
                layers.append(OrthogonalSylvester(tf.Variable(np.eye(dims, dtype=np.float32)
                                                              + rng.normal(0, 0.1, (dims, dims)).astype(np.float32),
                                                              name=f"q_{k}"), r, r_tilde, b))
            elif kind == "householder":
                layers.append(HouseholderSylvester(v([dims, dims], 1.0, "v"), r, r_tilde, b))
            else:
                layers.append(TriangularSylvester(r, r_tilde, b, reverse=bool(k % 2)))
        else:
            raise ValueError(f"unknown flow type {kind!r}: choose one of {', '.join(FLOW_TYPES)}")
    return layers


def build_vi_flow(kind: str, dims: int = 2, n_flows: int = 8, hidden_units: Sequence[int] = (32, 32),
                  seed: int | None = None) -> tfd.TransformedDistribution:
    """:math:`q_K`: a standard normal pushed through ``n_flows`` flows of one ``kind`` (:data:`FLOW_TYPES`).

    Free parameters are ``tf.Variable`` s initialised near the identity from NumPy's global generator
    (seeded by :func:`flowlab.seed`) unless ``seed`` is given.  ``"iaf"`` is
    :func:`flowlab.flows.build_iaf` (inverted MADE layers with reversals, log-scales bounded by
    :data:`IAF_LOG_SCALE_BOUND`), which samples in one pass.
    """
    dims, n_flows = integer(dims, "dims"), integer(n_flows, "n_flows")
    if kind == "iaf":
        from flowlab.flows import build_iaf

        return build_iaf(dims, n_layers=n_flows, hidden_units=hidden_units, log_scale_bound=IAF_LOG_SCALE_BOUND)
    rng = np.random.default_rng(seed if seed is not None else np.random.randint(2**31))
    layers = _flow_layers(kind, dims, n_flows, rng)
    base = tfd.MultivariateNormalDiag(loc=tf.zeros(dims), scale_diag=tf.ones(dims))
    # tfb.Chain applies its list right to left: reverse so that the first flow acts first on z0.
    return tfd.TransformedDistribution(base, tfb.Chain(list(reversed(layers))), name=f"{kind}_flow")


# --- The amortised flow-VAE ----------------------------------------------------------------------
def flow_vae_loss(log_q0: tf.Tensor, sum_log_det: tf.Tensor, log_prior: tf.Tensor,
                  log_likelihood: tf.Tensor) -> tf.Tensor:
    """Per data point: :math:`\\log q_0(z_0) - \\sum_k\\log|\\det J_k| - \\log p(z_K) - \\log p(x\\mid z_K)`."""
    return log_q0 - sum_log_det - log_prior - log_likelihood


def _amortised_sizes(kind: str | None, d: int) -> list[int]:
    """Sizes of each flow's parameters, in the order the encoder's head emits them."""
    if kind in (None, "iaf"):
        return []
    return {"planar": [d, d, 1], "radial": [d, 1, 1], "orthogonal": [d * d, d * d, d * d, d],
            "householder": [d * d, d * d, d * d, d], "triangular": [d * d, d * d, d]}[kind]


class FlowVAE(tf.keras.Model):
    """A VAE whose posterior is :math:`q_0(z_0\\mid x)` followed by ``n_flows`` flows of type ``flow``.

    Planar, radial and the three Sylvester flows are amortised: the encoder emits their parameters
    for each data point (van den Berg et al.'s setting).  ``flow="iaf"`` uses :func:`flowlab.flows.made_layer`
    with global weights (not conditioned on x): a simplification of Kingma et al.'s context-conditioned IAF.
    The model's output is the per-example free energy ``loss_fn(log_q0, sum_log_det, log_prior,
    log_likelihood)`` (:func:`flow_vae_loss` unless given); compile with :func:`free_energy`.
    The likelihood is a diagonal Gaussian with a learned mean and scale per feature.
    """

    def __init__(self, data_dim: int, latent_dim: int = 2, flow: str | None = None, n_flows: int = 0,
                 hidden: int = 32, loss_fn: Callable[..., tf.Tensor] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if flow is not None and flow not in FLOW_TYPES:
            raise ValueError(f"unknown flow type {flow!r}: choose None or one of {', '.join(FLOW_TYPES)}")
        if flow is None and n_flows:
            raise ValueError("n_flows > 0 needs a flow type")
        self.data_dim, self.latent_dim = integer(data_dim, "data_dim"), integer(latent_dim, "latent_dim")
        self.flow, self.n_flows = flow, integer(n_flows, "n_flows", minimum=0)
        hidden = integer(hidden, "hidden")
        self.loss_fn = loss_fn or flow_vae_loss
        self.sizes = _amortised_sizes(flow, self.latent_dim)
        n_params = 2 * self.latent_dim + self.n_flows * sum(self.sizes)
        self.encoder = tf.keras.Sequential([tf.keras.layers.Dense(hidden, activation="tanh"),
                                            tf.keras.layers.Dense(hidden, activation="tanh"),
                                            tf.keras.layers.Dense(n_params)], name="encoder")
        self.decoder = tf.keras.Sequential([tf.keras.layers.Dense(hidden, activation="tanh"),
                                            tf.keras.layers.Dense(hidden, activation="tanh"),
                                            tf.keras.layers.Dense(2 * self.data_dim)], name="decoder")
        self.iaf_layers = []
        if flow == "iaf":
            from flowlab.flows import made_layer

            self.iaf_layers = [made_layer(self.latent_dim, (hidden,)) for _ in range(self.n_flows)]
            self._iaf_networks = [layer._shift_and_log_scale_fn for layer in self.iaf_layers]  # tracked by Keras

    def _flows(self, params: tf.Tensor) -> list[tfb.Bijector]:
        d, flows = self.latent_dim, []
        if self.flow == "iaf":
            for _k, layer in enumerate(self.iaf_layers):
                flows.append(tfb.Invert(layer))
                flows.append(tfb.Permute(list(reversed(range(d)))))
            return flows
        chunks = tf.split(params, self.sizes * self.n_flows, axis=-1) if self.n_flows else []
        per = len(self.sizes)
        for k in range(self.n_flows):
            p = chunks[k * per:(k + 1) * per]
            if self.flow == "planar":
                flows.append(Planar(p[0], p[1], p[2][..., 0]))
            elif self.flow == "radial":
                flows.append(Radial(p[0], p[1][..., 0], p[2][..., 0]))
            else:
                mats = [tf.reshape(t, tf.concat([tf.shape(t)[:-1], [d, d]], 0)) for t in p[:-1]]
                if self.flow == "orthogonal":
                    flows.append(OrthogonalSylvester(mats[0] + tf.eye(d), mats[1], mats[2], p[3]))
                elif self.flow == "householder":
                    flows.append(HouseholderSylvester(mats[0], mats[1], mats[2], p[3]))
                else:
                    flows.append(TriangularSylvester(mats[0], mats[1], p[2], reverse=bool(k % 2)))
        return flows

    def decode(self, z: tf.Tensor) -> tfd.Distribution:
        mean, raw_scale = tf.split(self.decoder(z), 2, axis=-1)
        return tfd.Independent(tfd.Normal(mean, tf.math.softplus(raw_scale) + 1e-3), 1)

    def call(self, x: tf.Tensor) -> tf.Tensor:
        return self._free_energy(x)

    # Plain Python control flow over a list of flows: autograph has nothing to convert, and converting
    # the bijectors' methods recursively has been seen to mis-bind `self` (a TypeError at trace time).
    @tf.autograph.experimental.do_not_convert
    def _free_energy(self, x: tf.Tensor) -> tf.Tensor:
        out = self.encoder(x)
        d = self.latent_dim
        mu, raw_sigma, params = out[..., :d], out[..., d:2 * d], out[..., 2 * d:]
        q0 = tfd.MultivariateNormalDiag(mu, tf.math.softplus(raw_sigma) + 1e-4)
        z = q0.sample()
        log_q0 = q0.log_prob(z)
        sum_log_det = tf.zeros_like(log_q0)
        for flow in self._flows(params):
            if hasattr(flow, "forward_and_log_det"):
                z, log_det = flow.forward_and_log_det(z)
            else:
                log_det = flow.forward_log_det_jacobian(z, event_ndims=1)
                z = flow.forward(z)
            sum_log_det += log_det
        prior = tfd.MultivariateNormalDiag(tf.zeros(d), tf.ones(d))
        return self.loss_fn(log_q0, sum_log_det, prior.log_prob(z), self.decode(z).log_prob(x))

    def generate(self, n: int, seed: Any = None) -> np.ndarray:
        """``n`` draws of :math:`x \\sim p(x\\mid z)p(z)` (the generative model; the flows are not used)."""
        z = tf.random.normal([int(n), self.latent_dim], seed=seed)
        return self.decode(z).sample(seed=seed).numpy()


def fit_vae(vae: FlowVAE, x: np.ndarray, *, epochs: int, batch_size: int = 32, learning_rate: float = 1e-3,
            callbacks: Iterable[tf.keras.callbacks.Callback] = (), verbose: Any = "auto") -> tf.keras.callbacks.History:
    """Train ``vae`` on ``x`` with :func:`flowlab.training.fit` (Adam, gradient clipping); return the history."""
    vae.compile(optimizer=tf.keras.optimizers.Adam(learning_rate, global_clipnorm=10.0), loss=free_energy)
    return training.fit(vae, x, epochs=epochs, batch_size=batch_size, callbacks=callbacks, verbose=verbose)[1]


def lecture_data(n_rows: int = 100, n_features: int = 3, mean: float = 1.0, std: float = 0.5,
                 seed: int = 0) -> np.ndarray:
    """The lecture's data: a 3 x 100 matrix from N(1.0, 0.5²), as 100 observations (rows) of 3 features."""
    return np.random.default_rng(seed).normal(mean, std, size=(n_rows, n_features)).astype(np.float32)


def feature_kl(x_input: np.ndarray, x_generated: np.ndarray, bins: int = 10) -> float:
    """:math:`\\sum_j \\mathrm{KL}(\\hat p_j\\Vert\\hat q_j)` over features :math:`j` of histograms on shared bins.

    ``bins`` equal bins span the input's range per feature (generated values outside go to the end
    bins); half a count is added to every bin of both so that an empty bin is no infinity.
    """
    x_input, x_generated = np.asarray(x_input, np.float64), np.asarray(x_generated, np.float64)
    if x_input.ndim != 2 or x_generated.ndim != 2 or x_input.shape[1] != x_generated.shape[1]:
        raise ValueError(f"feature_kl needs two (n, features) arrays with the same features, got "
                         f"{x_input.shape} and {x_generated.shape}")
    total = 0.0
    for j in range(x_input.shape[1]):
        edges = np.linspace(x_input[:, j].min(), x_input[:, j].max(), bins + 1)
        p = np.histogram(np.clip(x_input[:, j], edges[0], edges[-1]), edges)[0] + 0.5
        q = np.histogram(np.clip(x_generated[:, j], edges[0], edges[-1]), edges)[0] + 0.5
        p, q = p / p.sum(), q / q.sum()
        total += float(np.sum(p * np.log(p / q)))
    return total
