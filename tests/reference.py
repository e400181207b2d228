"""Independent numpy references for the tests: losses, gradients, proxes and a plain FISTA.

Nothing here calls mtlx; each formula is written from its textbook definition.
"""

import numpy as np


def logistic_loss(y, z):
    """log(1 + exp(-y z)) via logaddexp (stable for any z)."""
    return np.logaddexp(0.0, -y * z)


def logistic_deriv(y, z):
    """d/dz log(1 + exp(-y z)) = -y / (1 + exp(y z))."""
    return -y * np.exp(-np.logaddexp(0.0, y * z))


def huber_loss(y, z, epsilon=1.35):
    """scikit-learn's HuberRegressor loss part (scale 1): r^2 inside epsilon, 2 eps |r| - eps^2 outside."""
    r = np.abs(y - z)
    return np.where(r <= epsilon, r**2, 2.0 * epsilon * r - epsilon**2)


def huber_deriv(y, z, epsilon=1.35):
    return -2.0 * np.clip(y - z, -epsilon, epsilon)


def squared_hinge_loss(y, z):
    return np.maximum(0.0, 1.0 - y * z) ** 2


def squared_hinge_deriv(y, z):
    return -2.0 * y * np.maximum(0.0, 1.0 - y * z)


def poisson_loss(y, z):
    """Half the Poisson deviance y log(y / mu) - y + mu at mu = exp(z) (0 log 0 = 0)."""
    mu = np.exp(z)
    with np.errstate(divide="ignore", invalid="ignore"):
        ylog = np.where(y > 0, y * np.log(np.where(y > 0, y, 1.0) / mu), 0.0)
    return ylog - y + mu


def poisson_deriv(y, z):
    return np.exp(z) - y


#: name -> (value, derivative) of each loss, written from its definition.
LOSS_REFS = {
    "squared": (lambda y, z: 0.5 * (z - y) ** 2, lambda y, z: z - y),
    "logistic": (lambda y, z: logistic_loss(y, z), lambda y, z: logistic_deriv(y, z)),
    "huber": (huber_loss, huber_deriv),
    "squared_hinge": (squared_hinge_loss, squared_hinge_deriv),
    "poisson": (poisson_loss, poisson_deriv),
}


def loss_grad_ref(tasks, W, b, losses, weights):
    """Value and gradient of sum_t c_t sum_i L_t(y_ti, x_ti . w_t + b_t), per-task numpy loop."""
    value = 0.0
    gW = np.zeros_like(W, dtype=np.float64)
    gb = np.zeros(W.shape[1])
    for t, (X, y) in enumerate(tasks):
        X = X.astype(np.float64)
        y = y.astype(np.float64)
        z = X @ W[:, t].astype(np.float64) + (0.0 if b is None else float(b[t]))
        value_of, deriv_of = LOSS_REFS[losses[t]]
        value += weights[t] * np.sum(value_of(y, z))
        r = deriv_of(y, z)
        gW[:, t] = weights[t] * (X.T @ r)
        gb[t] = weights[t] * r.sum()
    return value, gW, gb


def prox_l1_ref(W, tau):
    return np.sign(W) * np.maximum(np.abs(W) - tau, 0.0)


def prox_l21_ref(W, tau):
    norms = np.linalg.norm(W, axis=1, keepdims=True)
    scale = np.where(norms > tau, 1.0 - tau / np.where(norms > 0, norms, 1.0), 0.0)
    return W * scale


def prox_trace_ref(W, tau):
    U, s, Vt = np.linalg.svd(W, full_matrices=False)
    return (U * np.maximum(s - tau, 0.0)) @ Vt


def prox_mean_ref(W, tau):
    """argmin_U 0.5 ||U - W||^2 + tau/2 ||U P||^2 with P = I - 11^T/T: solve U (I + tau P) = W."""
    T = W.shape[1]
    P = np.eye(T) - np.full((T, T), 1.0 / T)
    return np.linalg.solve((np.eye(T) + tau * P).T, W.T).T


def penalty_ref(W, name):
    if name == "l1":
        return np.abs(W).sum()
    if name == "l21":
        return np.linalg.norm(W, axis=1).sum()
    if name == "trace":
        return np.linalg.svd(W, compute_uv=False).sum()
    if name == "mean":
        return 0.5 * np.sum((W - W.mean(axis=1, keepdims=True)) ** 2)
    return 0.0


PROX_REF = {"l1": prox_l1_ref, "l21": prox_l21_ref, "trace": prox_trace_ref, "mean": prox_mean_ref}


def fista_squared_ref(tasks, weights, penalty, alpha, n_iter=200_000, tol=1e-15):
    """Plain FISTA with a fixed step 1/L (L from per-task Gram matrices) and gradient restart.

    Least squares per task through its Gram matrix G_t = X_t^T X_t, c_t = X_t^T y_t, so each
    iteration is cheap. Runs until F stops changing (relative change <= tol twice in a row).
    Returns (W, F).
    """
    d = tasks[0][0].shape[1]
    G = np.stack([w * X.T @ X for (X, _), w in zip(tasks, weights)])
    c = np.stack([w * X.T @ y for (X, y), w in zip(tasks, weights)], axis=1)
    yy = sum(w * y @ y for (_, y), w in zip(tasks, weights))
    L = max(np.linalg.eigvalsh(g).max() for g in G)
    prox = PROX_REF[penalty]

    def f(W):
        return 0.5 * np.einsum("jt,tjk,kt->", W, G, W) - np.sum(c * W) + 0.5 * yy

    def F(W):
        return f(W) + alpha * penalty_ref(W, penalty)

    W = np.zeros((d, len(tasks)))
    Y = W.copy()
    t = 1.0
    F_old = F(W)
    calm = 0
    for _ in range(n_iter):
        grad = np.einsum("tjk,kt->jt", G, Y) - c
        W_new = prox(Y - grad / L, alpha / L)
        if np.sum((Y - W_new) * (W_new - W)) > 0:
            t, Y = 1.0, W.copy()
            continue
        t_new = 0.5 * (1 + np.sqrt(1 + 4 * t * t))
        Y = W_new + (t - 1) / t_new * (W_new - W)
        W, t = W_new, t_new
        F_new = F(W)
        calm = calm + 1 if abs(F_old - F_new) <= tol * abs(F_new) else 0
        F_old = F_new
        if calm >= 2:
            break
    return W, F_old
