"""The preconditioned-sharpness thresholds of docs/theory.md §7, by bisection and on a network."""

import numpy as np
import pytest

from stabsim.losses import Network, Quadratic
from stabsim.maps.adaptive import adaptive_threshold, frozen_threshold, run_adaptive

#: a coupled quadratic and an uneven frozen ν: P⁻¹A is far from a multiple of A
A = np.array([[3.0, 1.0, 0.2], [1.0, 2.0, 0.5], [0.2, 0.5, 1.0]])
NU0 = np.array([0.5, 2.0, 9.0])


@pytest.mark.parametrize("beta1", [0.0, 0.9])
def test_bisection_recovers_the_closed_form_threshold(beta1):
    # the largest stable η times λ_max(P⁻¹A) (dense eigh, independent of the engine) is
    # (2 + 2β₁)/(1 − β₁): 2 for RMSProp, 38 for Adam at β₁ = 0.9. The bisection resolves η_c
    # to 1e-7 relative (frozen_threshold's docstring): 1e-6 is the accuracy asked for.
    p = np.sqrt(NU0)
    scale = 1.0 / np.sqrt(p)
    lam = np.linalg.eigvalsh(scale[:, None] * A * scale[None, :])[-1]
    eta_c = frozen_threshold(Quadratic(A), NU0, beta1)
    assert eta_c * lam == pytest.approx((2.0 + 2.0 * beta1) / (1.0 - beta1), rel=1e-6)
    assert lam == pytest.approx(adaptive_threshold(eta_c, beta1), rel=1e-6)


def test_bisection_refuses_what_it_cannot_bracket():
    with pytest.raises(TypeError, match="Quadratic"):
        frozen_threshold(Network((2,)), np.ones(7))
    with pytest.raises(ValueError, match="positive"):
        frozen_threshold(Quadratic([-1.0, -2.0]), np.ones(2))


@pytest.mark.slow
@pytest.mark.parametrize(("method", "beta1"), [("rmsprop", 0.0), ("adam", 0.9),
                                               ("scalar_rmsprop", 0.0)])
def test_sustained_run_hovers_at_the_preconditioned_threshold(method, beta1):
    # docs/theory.md §7: along a sustained run the preconditioned sharpness λ_max(P⁻¹H)
    # equilibrates at (2 + 2β₁)/((1 − β₁)η), while the raw sharpness is free. The claim is
    # of leading order (the threshold is that of a frozen preconditioner; the discrete ν
    # moves with the oscillation), so the median over the late half is asked to lie within
    # 10% of it; the raw sharpness, measured in the same units, sits more than an order of
    # magnitude below, which no ±10% band could confuse with the claim. Measured on this
    # network over steps 3000-6000 (docs/adaptive.md): medians 1.043 (RMSProp), 0.974
    # (Adam), 1.000 (Scalar); on the d = 97 network of that page 1.04-1.10, 0.95-0.96 and
    # 1.000.
    # Scalar RMSProp is not given a tighter band, although it sits far closer (median
    # 1 − 5.6e-5, time sd 3.7e-6 over the late half): with P = √ν I the frozen threshold is
    # exact (λ_max(P⁻¹H) = S/√ν), and along u the oscillation obeys |x_{t+1}/x_t| =
    # 2r_t − 1 (r = S_eff/2), so r − 1 is half the per-step log-growth rate of the
    # oscillation plus the square of r's fluctuation (neutral over a period-2 pair when
    # mean ln(2r − 1) = 0). That growth rate (here the oscillation decays by ~1e-4 a step)
    # is not fixed by THEORY §7 or the central flow, which predicts S_eff = 2 along the
    # flow only; a band derived for it would need the run's own oscillation, so the
    # leading-order ±10% stays, a statement of the claim's order, for all three.
    net = Network((4, 3), data="sine", n_samples=10)
    eta = 0.005
    result = run_adaptive(net, net.init(seed=0), eta, 6000, method=method, beta1=beta1,
                          beta2=0.99, stride=5)
    assert result.success, result.message
    late = result.step >= 3000
    relative = result.effective_sharpness[late]
    assert abs(np.median(relative) - 1.0) < 0.1, np.median(relative)
    assert np.median(result.sharpness[late] / result.threshold) < 0.1


def test_a_negative_nu0_is_refused_naming_it():
    # it had gone on to sqrt(-1) = NaN and a ValueError about eta = nan
    with pytest.raises(ValueError, match="nu0 must be ≥ 0"):
        frozen_threshold(Quadratic(np.eye(2)), [-1.0, 1.0])
