"""Lab 05's checks: ✔ for right answers written differently, ✘ naming the idea for wrong ones.

A check that raises on its own is a bug, never the student's: no verdict here may say "the check
itself failed".
"""

import tensorflow as tf
import tensorflow_probability as tfp
from check_verdicts import fails, passes

from flowlab import variational as V
from flowlab.checks import variational as check
from flowlab.datasets.energies import energy_log_prob, log_normalizer

tfd, tfb = tfp.distributions, tfp.bijectors


# --- Exercise 1: the planar map and its log-det ----------------------------------------------------
def planar_solution(z, w, u_hat, b):
    h = tf.tanh(tf.reduce_sum(z * w, axis=-1) + b)
    return z + h[:, None] * u_hat, tf.math.log(tf.abs(1.0 + (1.0 - h**2) * tf.reduce_sum(w * u_hat)))


def planar_matmul(z, w, u_hat, b):
    a = tf.linalg.matvec(z, w) + b
    psi = tf.einsum("d,d->", w, u_hat) / tf.cosh(a) ** 2
    return tf.tanh(a)[..., None] * u_hat[None, :] + z, tf.math.log1p(psi)


def planar_h_not_h_prime(z, w, u_hat, b):
    h = tf.tanh(tf.reduce_sum(z * w, axis=-1) + b)
    return z + h[:, None] * u_hat, tf.math.log(tf.abs(1.0 + h * tf.reduce_sum(w * u_hat)))


def planar_sum_over_batch(z, w, u_hat, b):
    h = tf.tanh(tf.reduce_sum(z * w) + b)  # one number for the whole batch
    return z + h * u_hat, tf.math.log(tf.abs(1.0 + (1.0 - h**2)
                                             * tf.reduce_sum(w * u_hat))) * tf.ones(tf.shape(z)[:1], z.dtype)


def test_planar_right(capsys):
    passes(capsys, check.planar_transform, planar_solution)
    passes(capsys, check.planar_transform, planar_matmul)


def test_planar_wrong(capsys):
    fails(capsys, check.planar_transform, planar_h_not_h_prime, hint="autodiff")
    fails(capsys, check.planar_transform, planar_sum_over_batch, hint="one number per point")
    fails(capsys, check.planar_transform, lambda z, w, u, b: z + u * tf.tanh(tf.reduce_sum(z * w, -1, True) + b),
          hint="pair")
    fails(capsys, check.planar_transform, ..., hint="placeholder")


# --- Exercise 2: the constraint on û ---------------------------------------------------------------
def constrain_solution(u, w):
    wu = tf.reduce_sum(w * u, axis=-1, keepdims=True)
    return u + (-1.0 + tf.math.softplus(wu) - wu) * w / tf.reduce_sum(w * w, axis=-1, keepdims=True)


def constrain_einsum(u, w):
    wu = tf.einsum("...d,...d->...", w, u)[..., None]
    unit = w / tf.norm(w, axis=-1, keepdims=True)
    return u + (tf.nn.softplus(wu) - 1.0 - wu) * unit / tf.norm(w, axis=-1, keepdims=True)


def constrain_without_minus_one(u, w):
    wu = tf.reduce_sum(w * u, axis=-1, keepdims=True)
    return u + (tf.math.softplus(wu) - wu) * w / tf.reduce_sum(w * w, axis=-1, keepdims=True)


def constrain_whole_batch(u, w):
    wu = tf.reduce_sum(w * u)
    return u + (-1.0 + tf.math.softplus(wu) - wu) * w / tf.reduce_sum(w * w)


def test_constraint_right(capsys):
    passes(capsys, check.planar_constraint, constrain_solution)
    passes(capsys, check.planar_constraint, constrain_einsum)


def test_constraint_wrong(capsys):
    fails(capsys, check.planar_constraint, lambda u, w: u, hint="not invertible")
    fails(capsys, check.planar_constraint, constrain_without_minus_one, hint="-1 + softplus")
    fails(capsys, check.planar_constraint, constrain_whole_batch)
    fails(capsys, check.planar_constraint, lambda u, w: u + w, hint=("m(w·u)",))


# --- Exercise 3: the reverse-KL estimator ----------------------------------------------------------
def elbo_solution(q, target_log_prob, n):
    z, log_q = q.experimental_sample_and_log_prob(n)
    return tf.reduce_mean(log_q - target_log_prob(z))


def elbo_sample_then_log_prob(q, target_log_prob, n):
    z = q.sample(n)
    return -tf.reduce_mean(target_log_prob(z) - q.log_prob(z))


def test_elbo_right(capsys):
    passes(capsys, check.elbo_estimator, elbo_solution)
    passes(capsys, check.elbo_estimator, elbo_sample_then_log_prob)
    passes(capsys, check.elbo_estimator, V.negative_elbo)


def test_elbo_wrong(capsys):
    fails(capsys, check.elbo_estimator, lambda q, t, n: -elbo_solution(q, t, n), hint="mind the sign")
    fails(capsys, check.elbo_estimator, lambda q, t, n: -tf.reduce_mean(t(q.sample(n))), hint="-2")

    def summed(q, t, n):
        z, log_q = q.experimental_sample_and_log_prob(n)
        return tf.reduce_sum(log_q - t(z))

    fails(capsys, check.elbo_estimator, summed, hint="exactly -2")

    def stopped(q, t, n):
        z = tf.stop_gradient(q.sample(n))
        return tf.reduce_mean(q.log_prob(z) - t(z))

    fails(capsys, check.elbo_estimator, stopped, hint="reparameterisation")
    fails(capsys, check.elbo_estimator, lambda q, t, n: q.log_prob(q.sample(n)) - t(q.sample(n)), hint="one number")


# --- Exercise 4: the Sylvester log-det -------------------------------------------------------------
def sylvester_solution(z, q, r, r_tilde, b):
    a = tf.linalg.matvec(r_tilde, tf.linalg.matvec(q, z, transpose_a=True)) + b
    diagonal = tf.linalg.diag_part(r) * tf.linalg.diag_part(r_tilde)
    return tf.reduce_sum(tf.math.log(tf.abs(1.0 + diagonal * (1.0 - tf.tanh(a) ** 2))), axis=-1)


def sylvester_einsum(z, q, r, r_tilde, b):
    a = tf.einsum("ij,nj->ni", r_tilde, tf.einsum("dm,nd->nm", q, z)) + b
    diagonal = tf.linalg.diag_part(tf.matmul(r, r_tilde))  # triangular: diag(R R~) = diag(R) diag(R~)
    return tf.reduce_sum(tf.math.log1p(diagonal / tf.cosh(a) ** 2), axis=-1)


def sylvester_h_not_h_prime(z, q, r, r_tilde, b):
    a = tf.linalg.matvec(r_tilde, tf.linalg.matvec(q, z, transpose_a=True)) + b
    diagonal = tf.linalg.diag_part(r) * tf.linalg.diag_part(r_tilde)
    return tf.reduce_sum(tf.math.log(tf.abs(1.0 + diagonal * tf.tanh(a))), axis=-1)


def sylvester_no_q(z, q, r, r_tilde, b):
    a = tf.linalg.matvec(r_tilde, z[:, : r.shape[0]]) + b  # forgets Q^T
    diagonal = tf.linalg.diag_part(r) * tf.linalg.diag_part(r_tilde)
    return tf.reduce_sum(tf.math.log(tf.abs(1.0 + diagonal * (1.0 - tf.tanh(a) ** 2))), axis=-1)


def test_sylvester_right(capsys):
    passes(capsys, check.sylvester_log_det, sylvester_solution)
    passes(capsys, check.sylvester_log_det, sylvester_einsum)


def test_sylvester_wrong(capsys):
    fails(capsys, check.sylvester_log_det, sylvester_h_not_h_prime, hint="autodiff")
    fails(capsys, check.sylvester_log_det, sylvester_no_q, hint="R̃ Qᵀ z + b")
    fails(capsys, check.sylvester_log_det, lambda z, q, r, rt, b: sylvester_solution(z, q, r, rt, b)[:, None],
          hint="shape")


# --- Exercise 5: the flow-VAE loss -----------------------------------------------------------------
def test_flow_vae_loss_right(capsys):
    passes(capsys, check.flow_vae_loss, V.flow_vae_loss)
    passes(capsys, check.flow_vae_loss, lambda lq, ld, lp, ll: tf.reduce_mean(-(ll + lp) + (lq - ld)))


def test_flow_vae_loss_wrong(capsys):
    fails(capsys, check.flow_vae_loss, lambda lq, ld, lp, ll: lq + ld - lp - ll, hint="wrong sign")
    fails(capsys, check.flow_vae_loss, lambda lq, ld, lp, ll: lq - ld - ll, hint="reconstruction")
    fails(capsys, check.flow_vae_loss, lambda lq, ld, lp, ll: tf.reduce_sum(lq - ld - lp - ll), hint="reconstruction")
    fails(capsys, check.flow_vae_loss, ..., hint="placeholder")


# --- The trained flow: the notebook's fast-mode recipe ---------------------------------------------
def _trained(estimator=V.negative_elbo, steps=150):
    q = V.build_vi_flow("planar", dims=2, n_flows=2, seed=0)
    V.fit_variational(q, energy_log_prob("U1"), steps=steps, learning_rate=1e-2, annealing_steps=steps // 2,
                      estimator=estimator, verbose=0)
    return q


def test_trained_flow(capsys):
    target, log_z = energy_log_prob("U1"), log_normalizer("U1")
    passes(capsys, check.trained_flow, _trained(), target, log_z)
    fails(capsys, check.trained_flow, V.build_vi_flow("planar", dims=2, n_flows=2, seed=0), target, log_z,
          hint="well below its base")
    flipped = _trained(lambda q, t, n: -V.negative_elbo(q, t, n), steps=60)
    fails(capsys, check.trained_flow, flipped, target, log_z)
    fails(capsys, check.trained_flow, tfd.Normal(0.0, 1.0), target, log_z, hint="a flow")
    fails(capsys, check.trained_flow, ..., target, log_z, hint="placeholder")


class Inflating(tfb.Bijector):
    """A trained chain whose log-det claims two nats more stretching than there is."""

    def __init__(self, inner):
        super().__init__(forward_min_event_ndims=1, name="inflating")
        self.inner = inner

    def _forward(self, z):
        return self.inner.forward(z)

    def _forward_log_det_jacobian(self, z):
        return self.inner.forward_log_det_jacobian(z, event_ndims=1) + 2.0


def test_trained_flow_needs_an_honest_log_det(capsys):
    """A flow whose log-det claims more stretching than its map has fails, trained or not."""
    target, log_z = energy_log_prob("U1"), log_normalizer("U1")
    for flow in (V.build_vi_flow("planar", dims=2, n_flows=2, seed=0), _trained()):
        liar = tfd.TransformedDistribution(flow.distribution, Inflating(flow.bijector))
        fails(capsys, check.trained_flow, liar, target, log_z, hint="autodiff")


def test_trained_flow_is_measured_against_u1_itself(capsys):
    """An untrained flow with LOG_Z["U1"] shifted, or against another target, fails with a hint."""
    untrained = V.build_vi_flow("planar", dims=2, n_flows=2, seed=0)
    target, log_z = energy_log_prob("U1"), log_normalizer("U1")
    fails(capsys, check.trained_flow, untrained, target, log_z - 3.0, hint="log normaliser")
    fails(capsys, check.trained_flow, untrained, energy_log_prob("U2"), log_z, hint="U1's energy")
    fails(capsys, check.trained_flow, untrained, lambda z: target(z) + 3.0, log_z, hint="U1's energy")
