"""The GD classes by behaviour (stabsim.sweep.classify), on exact runs of each kind.

Each run's records are computed as the GD sweep cells compute theirs (r_t = S·h_t/2 with the
method's effective step, the late window the last quarter of the records, a harmonic mean
for normalised GD), plus the late-window maximum of r that decides whether the sharpness is
held at the threshold.
"""

import math

import numpy as np
import pytest

from stabsim._status import Status
from stabsim.losses import Minimalist, Quadratic, QuadraticRegression, ScalarNetwork
from stabsim.maps import run_gd
from stabsim.sweep.classify import GDClass, classify_gd

BAND, WINDOW = 0.1, 0.25  # the sweep's defaults


def _classify(loss, theta0, eta, steps, method="gd", with_late_max=True):
    run = run_gd(loss, np.asarray(theta0, dtype=float), eta, steps, method=method)
    step = eta / run.grad_norm if method == "normalised" else eta
    rel = 0.5 * run.sharpness[:, 0] * step
    late = rel[rel.shape[0] - max(1, math.ceil(WINDOW * rel.shape[0])):]
    mean = late.size / np.sum(1.0 / late) if method == "normalised" else np.mean(late)
    code = classify_gd(np.array(int(run.status)), run.loss[0], run.loss[-1], run.loss.max(),
                       rel.max(), mean, BAND,
                       late_max_rel=late.max() if with_late_max else None)
    return GDClass(int(code)), mean


def test_converged_far_below_the_threshold():
    # a = 4, η = 0.3: S η/2 = 0.6, the threshold is never reached
    assert _classify(Quadratic([4.0]), [1.0], 0.3, 400)[0] is GDClass.CONVERGED


@pytest.mark.parametrize("with_late_max", [True, False])
def test_converged_to_a_minimiser_just_below_the_threshold(with_late_max):
    # Zhu et al.: GD passes 2/η, then settles (loss 7e-29) on a minimiser with S η/2 = 0.989,
    # inside the 10% band: converged, not the edge of stability
    cls, mean = _classify(Minimalist(), [2.0, 0.3], 0.3, 2000, with_late_max=with_late_max)
    assert abs(mean - 1.0) < BAND  # the case the band alone gets wrong
    assert cls is GDClass.CONVERGED


def test_settling_run_is_converged_once_the_sharpness_stays_below():
    # The same run cut at 300 steps: the loss (1.7e-7) is not at round-off yet, but over the
    # late window S stays below 2/η (max r = 0.997) and the oscillation along u decays.
    cls, mean = _classify(Minimalist(), [2.0, 0.3], 0.3, 300)
    assert abs(mean - 1.0) < BAND and cls is GDClass.CONVERGED
    # Without the late-window maximum (what the sweep cells record) the band decides and
    # still says edge of stability: the limitation stated in the module docstring.
    assert _classify(Minimalist(), [2.0, 0.3], 0.3, 300, with_late_max=False)[0] is (
        GDClass.EDGE_OF_STABILITY)


def test_still_oscillating_run_is_at_the_edge_of_stability():
    # cut at 150 steps the same run still crosses 2/η in the late window (max r = 1.07)
    assert _classify(Minimalist(), [2.0, 0.3], 0.3, 150)[0] is GDClass.EDGE_OF_STABILITY


@pytest.mark.parametrize("with_late_max", [True, False])
def test_sustained_edge_of_stability(with_late_max):
    # two_scale: progressive sharpening, then cycles around 2/η for the rest of the run
    eta = 0.01
    loss = QuadraticRegression.two_scale(eta)
    assert _classify(loss, np.zeros(loss.dim), eta, 1200, with_late_max=with_late_max)[0] is (
        GDClass.EDGE_OF_STABILITY)


def test_normalised_gd_is_at_the_edge_of_stability():
    # docs/theory.md §4: a period-2 orbit across the manifold with harmonic-mean r = 1
    cls, _ = _classify(ScalarNetwork(3), [1.5, 0.8, 0.9], 0.01, 2000, method="normalised")
    assert cls is GDClass.EDGE_OF_STABILITY


def test_catapult():
    # minimalist from (2, 0.15) at η = 0.35: the loss spikes above its start, then GD settles
    # below the threshold
    assert _classify(Minimalist(), [2.0, 0.15], 0.35, 3000)[0] is GDClass.CATAPULT



def test_round_off_rule_needs_a_positive_start():
    # a loss that takes negative values (e.g. the map's exact realisation) has no scale for
    # "fell to round-off": a run held at the threshold whose loss went from −1 to −5 is at
    # the edge of stability; from +1 to 1e-20 it has converged
    held = dict(status=np.array(0), peak_loss=np.array(1.0), max_rel=np.array(1.2),
                late_rel=np.array(1.0), band=BAND, late_max_rel=np.array(1.05))
    negative = classify_gd(initial_loss=np.array(-1.0), final_loss=np.array(-5.0), **held)
    settled = classify_gd(initial_loss=np.array(1.0), final_loss=np.array(1e-20), **held)
    assert GDClass(int(negative)) is GDClass.EDGE_OF_STABILITY
    assert GDClass(int(settled)) is GDClass.CONVERGED


def test_a_run_held_at_the_edge_with_its_loss_above_the_start_is_not_diverged():
    # a run that starts past the threshold is thrown off, then self-stabilises at the edge
    # with its loss above its start but below the throw's peak (the valley of docs/byol.md
    # at m = 1.5, η = 0.6: bounded, late mean of Sη/2 1.002): that rise had made it
    # "diverged". A loss above the start is divergence where the run is not held at the
    # edge, or where its peak lies in the late window (still rising: GD above 2/η on a
    # quadratic is held at a constant r > 1); a run that stopped is diverged whatever else
    held = dict(peak_loss=np.array(0.05), max_rel=np.array(1.3), late_rel=np.array(1.002),
                band=BAND, late_max_rel=np.array(1.05))
    above = dict(initial_loss=np.array(0.021), final_loss=np.array(0.031))

    def regime(status=0, **changes):
        return GDClass(int(classify_gd(status=np.array(status), **above,
                                       **(held | changes))))

    assert regime(late_peak_loss=np.array(0.035)) is GDClass.EDGE_OF_STABILITY
    assert regime(late_peak_loss=np.array(0.05)) is GDClass.DIVERGED  # peaks at the end
    assert regime() is GDClass.DIVERGED  # without the statistic: a rise is divergence
    assert regime(late_peak_loss=np.array(0.035), late_max_rel=np.array(0.9)) \
        is GDClass.DIVERGED  # not held
    assert regime(int(Status.DIVERGED), late_peak_loss=np.array(0.035)) is GDClass.DIVERGED


def test_the_quadratic_above_its_threshold_is_diverged():
    # end to end through run_sweep's statistics: a = 4 at η = 0.51 (r = 1.02 at every step,
    # held in the band, the loss growing by (1 − ηa)² a step) diverges (the valley of
    # docs/byol.md at η = 0.6, held at the edge, is tests/test_byol.py's)
    from stabsim.sweep import SweepConfig, run_sweep

    config = SweepConfig(model="gd", loss={"name": "quadratic", "A": [4.0]}, steps=400,
                         params={"theta0": [1.0]}, grid={"eta": [0.45, 0.51]})
    regimes = run_sweep(config, progress=False).to_xarray()["regime"].values.tolist()
    assert regimes == [GDClass.CONVERGED, GDClass.DIVERGED]


def test_a_cell_whose_lanczos_stalls_is_run_again_with_thick_restarts(thick_switches):
    # diag(0, …, 1 − 1e-8, 1), d = 100: Lanczos restarted from one Ritz vector stalls on the
    # pair (tests/test_gd.py); the cells are run again with thick restarts, and their
    # sharpness (here constant) is 1 to the tolerance 1e-10 (Bauer–Fike)
    from stabsim.sweep import SweepConfig, run_sweep

    diagonal = np.linspace(0.0, 1.0, 100)
    diagonal[-2] = 1.0 - 1e-8
    etas = [0.5, 1.0]
    config = SweepConfig(model="gd", loss={"name": "quadratic", "A": diagonal.tolist()},
                         steps=5, params={"theta0": [1.0] * 100}, grid={"eta": etas})
    ds = run_sweep(config, progress=False).to_xarray()
    assert ds["status"].values.tolist() == [int(Status.OK)] * 2
    assert thick_switches  # once for each chunk of cells run
    np.testing.assert_allclose(ds["final_rel_sharpness"], np.array(etas) / 2, rtol=1e-10)
