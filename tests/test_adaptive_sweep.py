"""The (η, β₂) sweep of an adaptive method, classified like the GD sweeps."""

import numpy as np

from stabsim import Status
from stabsim.losses import Quadratic
from stabsim.sweep.adaptive_cells import adaptive_sweep
from stabsim.sweep.classify import GDClass


def test_frozen_quadratic_cells_fall_on_either_side_of_the_threshold():
    # RMSProp on a x²/2 from ν = 0: its first step is η/√(1 − β₂) ≈ 3.2η long. At η = 1e-3
    # the preconditioned sharpness a/√ν stays near a/(0.3|g|) ~ 3, far below 2/η = 2000, and
    # the loss falls: converged. At η = 10 the first step already lands at |x| ≈ 31 > 1 and
    # the run leaves |x| < 1e3 (or the loss ends above its start): diverged.
    ds = adaptive_sweep(Quadratic([1.0]), [1.0], [1e-3, 10.0], [0.9], 50, stride=1,
                        divergence_norm=1e3).to_xarray()
    assert ds.regime.sel(eta=1e-3).item() == GDClass.CONVERGED
    assert ds.status.sel(eta=1e-3).item() == Status.OK
    assert ds.regime.sel(eta=10.0).item() == GDClass.DIVERGED
    assert ds.regime.attrs["flag_meanings"].split()[1] == "edge_of_stability"
    assert np.all(np.isfinite(ds.max_rel_sharpness.sel(eta=1e-3)))
