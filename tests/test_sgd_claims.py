"""The claims of docs/stochastic.md, measured on the headline tanh network (N = 32 examples).

SGD at η = 0.2 from the network's standard start, batches without replacement,
b = 4, 8, 16 (b = 32 is GD, whose sharpness sits at 2/η: the demo's network experiment),
two seeds each, 6000 steps; the window is steps 2000–6000, after the batch sharpness first
reaches 2/η (at steps 1100–1700 in every run measured). Measured (BS η/2 and λ_max η/2
over the window, seeds 0–2; the tests run seeds 0 and 1):

=====  ==================  =================  ==================
b      BS η/2 (time sd)    λ_max η/2          λ_max η/2, max
=====  ==================  =================  ==================
4      1.03–1.06 (0.2)     0.62–0.70          0.72–0.87
8      1.05–1.06 (0.1)     0.84–0.87          0.91–0.95
16     1.02–1.03 (0.09)    0.99–1.00          1.05–1.07
=====  ==================  =================  ==================

So the batch sharpness hovers at 2/η (a little above it: +2% to +6% on average) at every b,
while λ_max does not: it settles lower the smaller the batch. The claim "λ_max stays below
2/η" holds at b = 4 and 8 and fails at b = 16 = N/2, where λ_max itself sits at 2/η as under
GD: each batch holds half the data, and the full-batch instability along the top eigenvector
is the one that binds. At b = 2 the batch sharpness is still rising at 10⁴ steps (0.82–1.07
of 2/η in the 2000-step windows from 6000 to 10000, seeds 0 and 1), so it is left out.
"""

import pytest

from stabsim import Network, run_sgd
from stabsim.demo.experiments import HEADLINE_ETA, HEADLINE_NETWORK, HEADLINE_SEED

STEPS, WINDOW_START, STRIDE = 6000, 2000, 20


@pytest.fixture(scope="module")
def runs():
    net = Network(**HEADLINE_NETWORK)
    theta0 = net.init(HEADLINE_SEED)
    out = {}
    for b in (4, 8, 16):
        for seed in (0, 1):
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
    of 1. A BS that settled elsewhere, or had not reached 2/η, fails.

    No bound is derived here: the claim (Andreyev & Beneventano, THEORY §8) is qualitative,
    that BS stabilises at 2/η, and neither it nor docs/stochastic.md gives the size of the
    offset of its mean (+2% to +6% measured) or of its fluctuation (time sd 0.09-0.2). This
    is a noise-level check: the band is the run's own fluctuation, not a tolerance from
    theory or floating point, and the time sd is not a standard error of the mean (the
    records are correlated). It fails for a BS whose window mean lies more than one
    fluctuation from 2/η."""
    for (b, seed), (bs, _) in runs.items():
        assert abs(bs.mean() - 1.0) <= bs.std(), (b, seed, bs.mean(), bs.std())


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
