"""Compile the kernels most test files share, once, before the test workers start.

With one worker process per core, every worker would otherwise compile the same kernels at
the same time at the start of the run (measured: 1,530 s of CPU for a 900 s serial suite).
``tests/conftest.py`` runs this file in one process per worker, each compiling its share of
the calls below into Numba's on-disk cache, which the workers then read. A call that fails
here fails again in the tests that make it, with their report; so this file stays quiet.

    python tests/_warm.py INDEX COUNT    (process INDEX of COUNT: its share of the calls)
"""

import sys

import numpy as np

from stabsim import Network, compare, run_gd, sharpness
from stabsim.flows import central_flow
from stabsim.losses import (
    ManifoldFamily,
    Minimalist,
    Quadratic,
    QuadraticRegression,
    ScalarNetwork,
    SelfRegulatingPotential,
    UVModel,
)
from stabsim.maps import run_reduced, run_reduced_ensemble
from stabsim.maps.adaptive import run_adaptive
from stabsim.maps.sgd import run_sgd
from stabsim.spectral import tracked_top_eigenpair
from stabsim.sweep.catapult import catapult_sweep

NET = Network((4, 3), data="sine", n_samples=10)


def _gd(loss, **kwargs):
    run_gd(loss, np.full(loss.dim, 0.3), 0.01, 3, **kwargs)


def _central(loss):
    central_flow(loss, np.zeros(loss.dim), 0.01, 5.0)


def _compare(loss, theta0):
    """``compare`` at η = 2.2/S(θ₀): GD is past 2/η at once, so every prediction (θ† too) runs."""
    compare(loss, theta0, 2.2 / sharpness(loss, theta0), 5, warn=False)


def _network_gd():
    """GD on networks, run and swept, and the flows' tracked top eigenpair on one above
    d = 32 (the demo, notebook 08, the spectral tests): kernels of one family, so one process
    compiles them."""
    _gd(NET)
    _gd(UVModel(8))
    catapult_sweep([8], [1.0], steps=10)
    wide = Network((8, 8), data="sine", n_samples=12)
    tracked_top_eigenpair(wide, wide.init(seed=0))


#: (seconds of CPU to compile cold, each call alone from an empty cache, the call): the split
#: gives each process about the same total
CALLS = (
    (69, _network_gd),
    (58, lambda: run_sgd(NET, NET.init(seed=0), 0.01, 3, batch_size=2)),
    (51, lambda: run_adaptive(NET, NET.init(seed=0), 0.01, 3)),
    (13, lambda: run_reduced_ensemble([0.0, 1e-2], 0.0, 0.05, 1.0, 1.0, 10, stats=True)),
    (7, lambda: run_reduced_ensemble([0.0, 1e-2], 0.0, 0.05, 1.0, 1.0, 10)),
    (2, lambda: run_reduced(1e-2, 0.0, 0.05, 1.0, 1.0, 10)),
    (16, lambda: _gd(QuadraticRegression.random(6, 3, seed=0))),
    (12, lambda: _gd(QuadraticRegression.random(6, 3, seed=0), eigensolver="eigh")),
    (23, lambda: run_sgd(QuadraticRegression.random(6, 3, seed=0), np.zeros(6), 0.01, 3,
                         batch_size=2)),
    (19, lambda: run_adaptive(Quadratic(np.diag([3.0, 1.0, 0.5])), np.ones(3), 0.01, 3)),
    (12, lambda: _gd(Quadratic(np.diag([3.0, 1.0, 0.5])))),
    (10, lambda: _gd(Minimalist())),
    (12, lambda: _gd(ScalarNetwork(3))),
    (7, lambda: _gd(ManifoldFamily([2.0, 0.5], [[1.0, 0.5], [0.3, 0.2]]))),
    (8, lambda: _gd(SelfRegulatingPotential())),
    (5, lambda: _central(QuadraticRegression.two_scale(0.01))),
    (48, lambda: _compare(NET, NET.init(seed=0))),
    (12, lambda: _compare(QuadraticRegression.two_scale(0.01), np.zeros(6))),
)


def share(index: int, count: int) -> list:
    """The calls of process ``index`` of ``count``: costliest first, each to the process
    with the least work so far."""
    totals, shares = [0] * count, [[] for _ in range(count)]
    for cost, call in sorted(CALLS, key=lambda item: -item[0]):
        least = totals.index(min(totals))
        totals[least] += cost
        shares[least].append(call)
    return shares[index]


def main(index: int, count: int) -> None:
    for call in share(index, count):
        try:
            call()
        except Exception:  # noqa: BLE001, S110 (the tests report it)
            pass


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
