"""Arguments are checked once, at the public entry: the inner loops of the flows, θ† and
``compare`` call the loss without checking each point again (``Loss._grad`` and the other
unchecked forms, ``spectral._unchecked_top_eigenpairs``), so the number of checks does not
grow with the length of a run."""

import numpy as np
import pytest

from stabsim.comparison import compare
from stabsim.flows.central import central_flow
from stabsim.flows.gradient import gradient_flow
from stabsim.losses import Loss, Minimalist, Network, QuadraticRegression
from stabsim.maps.constrained import constrained_trajectory
from stabsim.spectral import _unchecked_top_eigenpairs, top_eigenpairs

ETA = 0.01
_NETWORK = Network((4, 4), n_samples=16)


@pytest.fixture
def checks(monkeypatch):
    """The number of ``Loss.check_point`` calls made so far (a one-element list)."""
    count = [0]
    check_point = Loss.check_point

    def counted(self, theta, name="theta"):
        count[0] += 1
        return check_point(self, theta, name)

    monkeypatch.setattr(Loss, "check_point", counted)
    return count


def _checks_of(checks, run):
    before = checks[0]
    result = run()
    return checks[0] - before, result


@pytest.mark.parametrize("run", [
    # the regression model's central flow reaches 2/η near t = 200 and is held there after
    # (top eigenpairs, ∇³L and ∇L at every right-hand side)
    lambda steps: central_flow(QuadraticRegression.two_scale(ETA), np.zeros(6), ETA,
                               150.0 * steps),
    lambda steps: gradient_flow(QuadraticRegression.two_scale(ETA), np.zeros(6), ETA,
                                150.0 * steps),
    lambda steps: constrained_trajectory(Minimalist(), [1.0, 0.5], 0.2, 10 * steps),
    lambda steps: compare(Minimalist(), [1.0, 0.05], 0.2, 15 * steps, warn=False),
    # d = 33 > 32: Lanczos and conjugate gradients on Hessian-vector products, no dense
    # Hessian (S(θ₀) = 1.82; the flow reaches 2/η at once)
    lambda steps: constrained_trajectory(_NETWORK, _NETWORK.init(0), 0.8, 5 * steps),
    lambda steps: central_flow(_NETWORK, _NETWORK.init(0), 1.4, 10.0 * steps),
], ids=["central_flow", "gradient_flow", "constrained_trajectory", "compare",
        "constrained_trajectory_network", "central_flow_network"])
def test_the_checks_do_not_grow_with_the_run(checks, run):
    short_checks, short = _checks_of(checks, lambda: run(2))
    long_checks, long = _checks_of(checks, lambda: run(4))
    assert short.success and long.success
    assert short_checks == long_checks


def test_unchecked_top_eigenpairs_is_top_eigenpairs_on_checked_arguments():
    loss = QuadraticRegression.random(40, 5, seed=1)
    theta = np.linspace(-1.0, 1.0, 40)
    v0 = np.cos(np.arange(40.0))
    for eigensolver in ("eigh", "lanczos"):
        checked = top_eigenpairs(loss, theta, 2, eigensolver=eigensolver, v0=v0)
        unchecked = _unchecked_top_eigenpairs(loss, theta, 2, eigensolver=eigensolver, v0=v0)
        np.testing.assert_array_equal(checked.values, unchecked.values)
        np.testing.assert_array_equal(checked.vectors, unchecked.vectors)
        np.testing.assert_array_equal(checked.residuals, unchecked.residuals)
