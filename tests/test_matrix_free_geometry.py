"""Projection onto M and the central flow on Hessian-vector products, against the dense path.

The same second-order regression model twice: the built-in family (which prefers the dense
Hessian: the complete spectra come from ``eigh``, a projection's iterations and the central
flow's right-hand side run Lanczos on its dense Hessian and solve for the derivative of u
densely) and a family registered here with the same kernels but without that preference
(Lanczos on HVPs, and conjugate gradients for the derivative of u). d = 40 is above the size
where "auto" goes dense. Both compute the same mathematical objects, so they must agree to
the solvers' tolerances.
"""

from typing import NamedTuple

import numpy as np

from stabsim import central_flow, proj_M
from stabsim._status import Status
from stabsim.losses import Loss, QuadraticRegression, register_family
from stabsim.losses.kernels import regression as kernels
from stabsim.maps.projection import stable_geometry
from stabsim.spectral import tracked_top_eigenpair


class RegressionOnProducts(NamedTuple):
    z0: np.ndarray
    J: np.ndarray
    Q: np.ndarray


register_family(RegressionOnProducts, value=kernels.value, grad=kernels.grad, hvp=kernels.hvp,
                d3=kernels.d3, shapes={"z0": ("n",), "J": ("n", "d"), "Q": ("n", "d", "d")})


def _pair(d=40, n=4, seed=5):
    dense = QuadraticRegression.random(d, n, seed=seed)
    free = Loss(RegressionOnProducts(*dense.params[:3]), d, check=False)
    return dense, free


def test_geometry_on_products_matches_the_dense_spectrum():
    dense, free = _pair()
    theta = np.random.default_rng(0).normal(size=dense.dim) * 0.3
    a = stable_geometry(dense, theta)
    b = stable_geometry(free, theta, u_ref=a.u)  # same sign of u
    # Lanczos to relative residual 1e-13: eigenvalues to ~1e-13 relative, u to 1e-13/gap
    assert abs(a.sharpness - b.sharpness) <= 1e-11 * a.sharpness
    assert abs(a.lambda2 - b.lambda2) <= 1e-9 * a.sharpness
    np.testing.assert_allclose(b.u, a.u, atol=1e-9)
    # ∇c2 needs r = (S I − H)⁺∇L: by CG on products against the dense pseudo-inverse
    H = dense.hessian(theta)
    values, vectors = np.linalg.eigh(H)
    rest = vectors[:, :-1]
    r = rest @ ((rest.T @ a.grad) / (values[-1] - values[:-1]))
    expected = values[-1] * vectors[:, -1] * np.sign(vectors[:, -1] @ a.u) \
        + dense.d3(theta, a.u, r)
    np.testing.assert_allclose(b.orthogonality_gradient(free), expected, rtol=1e-8, atol=1e-9)
    # the dense family's own iterations: Lanczos on its dense Hessian parts (to relative
    # residual 1e-13, as above) and a dense solve for r, against eigh
    s, u = tracked_top_eigenpair(dense, theta, a.u)
    assert abs(s - values[-1]) <= 1e-11 * values[-1]
    np.testing.assert_allclose(u, a.u, atol=1e-9)
    np.testing.assert_allclose(a.orthogonality_gradient(dense), expected, rtol=1e-8, atol=1e-9)


def test_projection_on_products_matches_the_dense_one():
    dense, free = _pair()
    # as in test_projection: z is a point of M moved by 0.05 along ∇S and 0.05 at random, so
    # the sharpness constraint is active and z is near M (where the projection is unique)
    base = np.random.default_rng(1).normal(size=dense.dim) * 0.2
    eta = 2.0 / (0.9 * stable_geometry(dense, base).sharpness)
    on_m = proj_M(dense, base, eta)
    assert on_m.status is Status.OK, on_m.message
    push = on_m.geometry.grad_sharpness / np.linalg.norm(on_m.geometry.grad_sharpness)
    kick = np.random.default_rng(2).normal(size=dense.dim)
    z = on_m.theta + 0.05 * push + 0.05 * kick / np.linalg.norm(kick)
    a, b = proj_M(dense, z, eta), proj_M(free, z, eta)
    assert a.status is Status.OK and b.status is Status.OK, (a.message, b.message)
    # both stop at distance tolerance 1e-10·|z| from the same KKT point
    tol = 1e-10 * max(1.0, np.linalg.norm(z))
    assert np.linalg.norm(a.theta - b.theta) <= 10 * tol
    assert b.sharpness_excess <= 10 * tol * np.linalg.norm(b.geometry.grad_sharpness)
    # the returned geometry is complete on products too (its iterations skip λ2, the result
    # computes it): the same λ2 as eigh, to Lanczos's 1e-13 relative and the 1e-9 distance
    assert abs(a.geometry.lambda2 - b.geometry.lambda2) <= 1e-8 * a.geometry.sharpness


def test_central_flow_on_products_matches_the_dense_one():
    dense, free = _pair(d=36, n=3, seed=1)
    theta0 = np.zeros(dense.dim)
    eta = 2.0 / (1.05 * stable_geometry(dense, theta0).sharpness)  # starts just above 2/η
    a = central_flow(dense, theta0, eta, 20.0, stride=5.0)
    b = central_flow(free, theta0, eta, 20.0, stride=5.0)
    assert a.status is b.status
    # integrated at rtol 1e-10 with right-hand sides that agree to ~1e-12: states to 1e-8
    np.testing.assert_allclose(b.trajectory, a.trajectory, rtol=0, atol=1e-8)
    np.testing.assert_allclose(b.sharpness, a.sharpness, rtol=1e-9)
