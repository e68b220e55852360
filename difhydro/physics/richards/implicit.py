"""Gradient of a converged sub-step by the implicit function theorem (custom VJP).

At the solution h* of ``F(h*, theta^n, p) = 0`` the derivative is ``dh*/dp = -J^{-1}
dF/dp`` with J = dF/dh the exact tridiagonal Jacobian (dK/dh included): one transposed
tridiagonal solve per sub-step and no reverse pass through the iterations, which is what
lets the iterations run in a ``while_loop``. The adaptive day (:mod:`.adaptive`) replays
each accepted sub-step through :func:`_implicit_solve` with :func:`at_solution` as the
solve, so its gradient is this one at every accepted step.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

# Relative diagonal dominance the implicit-gradient solve enforces (float32, float64).
_BWD_SHIFT = (1e-4, 1e-8)


def _tridiagonal_jacobian(fn, h):
    """Exact tridiagonal Jacobian of ``fn`` (``[*batch, N] -> [*batch, N]``, row i depends
    on h_{i-1}, h_i, h_{i+1} only) from three coloured forward-mode products: ``(lower,
    diag, upper)`` with ``lower[i] = dF_i/dh_{i-1}`` and ``upper[i] = dF_i/dh_{i+1}``."""
    colour = np.arange(h.shape[-1]) % 3
    _, jvp = jax.linearize(fn, h)
    cols = [jvp(jnp.broadcast_to(jnp.asarray(colour == c, h.dtype), h.shape)) for c in range(3)]

    def band(shift):  # entry (i, i + shift) sits in the product of the colour of i + shift
        source = (colour + shift) % 3
        return sum(jnp.where(source == c, cols[c], 0.0) for c in range(3))

    return band(-1).at[..., 0].set(0.0), band(0), band(1).at[..., -1].set(0.0)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _implicit_solve(system_fn, solve, h0, theta_prev, *consts):
    """``h`` with ``residual(h) = 0`` found by ``solve`` from ``h0``; differentiated by the
    implicit function theorem at the returned iterate (``h0`` gets a zero cotangent)."""
    h, _, count, done = solve(lambda h_: system_fn(h_, theta_prev, *consts), h0)
    return h, count, done.astype(h.dtype)


def _implicit_solve_fwd(system_fn, solve, h0, theta_prev, *consts):
    out = _implicit_solve(system_fn, solve, h0, theta_prev, *consts)
    return out, (out[0], theta_prev, consts)


def _implicit_solve_bwd(system_fn, solve, residuals, cotangents):
    h, theta_prev, consts = residuals
    g = cotangents[0]

    def residual(h_, theta_prev_, *consts_):
        system = system_fn(h_, theta_prev_, *consts_)
        return system.residual, system.storage_floor + system.storage

    lower, diag, upper = _tridiagonal_jacobian(lambda h_: residual(h_, theta_prev, *consts)[0], h)
    (_, storage), vjp = jax.vjp(lambda *args: residual(h, *args), theta_prev, *consts)
    # J = dF/dh. Where the storage term Delta C / dt is negligible against the face terms
    # (a saturated or incompressible profile under a flux top: a Neumann Laplacian, singular
    # up to a uniform shift of h) the backward solve gets the storage that makes the row
    # diagonally dominant by a relative margin: finite gradients, those of a marginally
    # compressible profile; rows with real storage are unchanged.
    eps = _BWD_SHIFT[jnp.dtype(h.dtype).itemsize >= 8]
    deficit = eps * (jnp.abs(lower) + jnp.abs(upper)) - jax.lax.stop_gradient(storage)
    diag = diag - jnp.maximum(deficit, 0.0)
    # J^T lam = g with (J^T)_{i,i-1} = J_{i-1,i} and (J^T)_{i,i+1} = J_{i+1,i}
    zero = jnp.zeros_like(h[..., :1])
    t_lower = jnp.concatenate([zero, upper[..., :-1]], axis=-1)
    t_upper = jnp.concatenate([lower[..., 1:], zero], axis=-1)
    lam = jax.lax.linalg.tridiagonal_solve(t_lower, diag, t_upper, g[..., None])[..., 0]
    # dh/dp = -J^{-1} dF/dp, so p_bar = -(dF/dp)^T lam
    bars = vjp((-lam, jnp.zeros_like(storage)))
    return (jnp.zeros_like(h), *bars)


_implicit_solve.defvjp(_implicit_solve_fwd, _implicit_solve_bwd)


def at_solution(system_fn, h):
    """A ``solve`` for :func:`_implicit_solve` that starts at a known solution (the
    accepted iterate of a forward pass) and returns it: no iterations, same gradient."""
    ones = jnp.ones(h.shape[:-1], h.dtype)
    return h, None, 0.0 * ones, ones > 0.0
