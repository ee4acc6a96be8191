"""The claims of docs/stochastic.md, measured on the headline tanh network (N = 32 examples).

SGD at η = 0.2 from the network's standard start, batches without replacement,
b = 4, 8, 16 (and b = 32, which is GD), seeds 0–2, 6000 steps, recorded every 21 steps;
the window is steps 2000–6000, after the batch sharpness first reaches 2/η (first recorded
at steps 1365–1827 in the runs at b = 4, 8, 16). Measured (BS η/2 and λ_max η/2 over the
window, seeds 0–2; the tests run seeds 0 and 1, and b = 32 once, the same run for every
seed):

=====  ==================  =================  ==================
b      BS η/2 (time sd)    λ_max η/2          λ_max η/2, max
=====  ==================  =================  ==================
4      1.04–1.08 (0.2)     0.62–0.70          0.73–0.78
8      1.05–1.07 (0.1)     0.84–0.87          0.91–0.92
16     1.01–1.03 (0.1)     0.99–1.00          1.05–1.06
32     0.999 (0.009)       0.999              1.016
=====  ==================  =================  ==================

The stride is odd on purpose. At b = 32 (GD at the edge of stability) the iterates alternate
on either side of the minimiser manifold, a period-2 orbit, so an even stride records one
side only: at stride 20 this row read 0.991 (0.004), 0.991, max 0.993 — the low side of the
orbit (recorded at every step, λ_max η/2 averages 0.991 on one side, 1.008 on the other),
which made GD look as if it stayed just below 2/η. At stride 21 the records alternate sides
and give the orbit's mean, as stride 1 does (BS η/2 0.9989 (sd 0.0088), λ_max η/2 0.9994,
max 1.0165). Under SGD (b < N) the records at even and odd steps agree (stride 1, seed 0:
means within 0.002), and the rows at b = 4–16 moved from their stride-20 values by sampling
alone.

So the batch sharpness hovers at 2/η (a little above it: +1% to +8% on average at
b = 4–16) at every b, and at b = 32 it sits at 2/η with λ_max, as GD's sharpness does.
λ_max does not follow it under SGD: it settles lower the smaller the batch. The claim
"λ_max stays below 2/η" holds at b = 4 and 8 (recorded at every step, seed 0, its window
maxima are 0.85 and 0.96: the stride-21 maxima are maxima of a sample) and fails at
b = 16 = N/2, where λ_max itself sits at 2/η as under GD: each batch holds half the data,
and the full-batch instability along the top eigenvector is the one that binds. At b = 2
the batch sharpness is still rising at 10⁴ steps (recorded at every step, its window means
over 6000–8000 and 8000–10000 are 1.00 and 1.07 of 2/η at seed 0, 0.80 and 0.87 at seed 1),
so it is left out.
"""

import pytest

from stabsim import Network, run_sgd
from stabsim.demo.experiments import HEADLINE_ETA, HEADLINE_NETWORK, HEADLINE_SEED

#: an odd stride: at the edge of stability GD's iterates alternate sides of a period-2
#: orbit, and an even stride would record one side only (module docstring)
STEPS, WINDOW_START, STRIDE = 6000, 2000, 21
N = HEADLINE_NETWORK["n_samples"]


@pytest.fixture(scope="module")
def runs():
    net = Network(**HEADLINE_NETWORK)
    theta0 = net.init(HEADLINE_SEED)
    out = {}
    for b in (4, 8, 16, N):
        for seed in (0, 1) if b < N else (0,):  # b = N is GD: the same run for every seed
            r = run_sgd(net, theta0, HEADLINE_ETA, STEPS, batch_size=b, seed=seed,
                        stride=STRIDE, batch_sharpness="exact")
            assert r.success
            window = r.step >= WINDOW_START
            out[b, seed] = (r.batch_sharpness[window] * HEADLINE_ETA / 2,
                            r.sharpness[window] * HEADLINE_ETA / 2)
    return out


@pytest.mark.slow
def test_batch_sharpness_hovers_at_two_over_eta(runs):
    """'Hovers at 2/η': 2/η lies inside the band the batch sharpness fluctuates over, i.e.
    the window mean of BS η/2 is within one standard deviation (over the window's records)
    of 1. A BS that settled elsewhere, or had not reached 2/η, fails. At b = N, GD, the
    same holds as GD's sharpness sits at 2/η (THEORY §1; §8: full batch reduces to it).

    No bound is derived here: the claim (Andreyev & Beneventano, THEORY §8) is qualitative,
    that BS stabilises at 2/η, and neither it nor docs/stochastic.md gives the size of the
    offset of its mean (+1% to +8% measured) or of its fluctuation (time sd 0.09-0.2 under
    SGD, 0.009 under GD). This is a noise-level check: the band is the run's own
    fluctuation, not a tolerance from theory or floating point, and the time sd is not a
    standard error of the mean (the records are correlated). It fails for a BS whose window
    mean lies more than one fluctuation from 2/η — as GD's did when recorded at an even
    stride, on one side of its period-2 orbit (0.991 ± 0.004 at stride 20)."""
    for (b, seed), (bs, _) in runs.items():
        assert abs(bs.mean() - 1.0) <= bs.std(), (b, seed, bs.mean(), bs.std())


@pytest.mark.slow
def test_gd_records_straddle_two_over_eta(runs):
    """At b = N, SGD is GD at the edge of stability, whose iterates alternate sides of a
    period-2 orbit about 2/η: λ_max η/2 and BS η/2 are recorded on both sides of 1 (an even
    stride records one side: at stride 20 the window maximum of λ_max η/2 was 0.993)."""
    bs, lam = runs[N, 0]
    for x in (bs, lam):
        assert x.min() < 1.0 < x.max(), (x.min(), x.max())


@pytest.mark.slow
def test_full_sharpness_below_and_lower_for_smaller_batches(runs):
    """λ_max < 2/η over the whole window at b = 4 and 8 (the claim fails at b = 16, see the
    module docstring: not asserted there), and the window mean of λ_max increases with b
    in every seed."""
    for seed in (0, 1):
        for b in (4, 8):
            assert runs[b, seed][1].max() < 1.0, (b, seed)
        means = [runs[b, seed][1].mean() for b in (4, 8, 16)]
        assert means[0] < means[1] < means[2], (seed, means)
