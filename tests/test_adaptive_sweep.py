"""The (η, β₂) sweep of an adaptive method, classified like the GD sweeps."""

import json

import numpy as np
import pytest

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
    # the norm decides the class: it is part of the sweep's record
    assert json.loads(ds.attrs["parameters"])["divergence_norm"] == 1e3
    assert ds.regime.attrs["flag_meanings"].split()[1] == "edge_of_stability"
    assert np.all(np.isfinite(ds.max_rel_sharpness.sel(eta=1e-3)))


def test_a_cell_with_a_singular_preconditioner_has_no_class():
    # diag(1, 2, 0) from (1, 1, 0): the flat coordinate's gradient is 0 and ν starts at 0, so
    # with eps = 0 P is singular at step 0 of every cell. Each cell had been classified
    # diverged (status NONFINITE, 0 steps run), though nothing diverged: the sweep refuses
    loss = Quadratic(np.diag([1.0, 2.0, 0.0]))
    with pytest.raises(ValueError, match=r"^eps = 0 leaves the cell eta = 0\.01, beta2 = 0\.9 "
                                         r"without a class: .*at step 0.*\(index 2\).*pass "
                                         r"eps > 0$"):
        adaptive_sweep(loss, [1.0, 1.0, 0.0], [0.01, 0.1], [0.9, 0.99], 100)
    # sign descent (β₂ = 0) from (1, 1) on ½|w|² at η = 1 lands on the minimiser at step 1,
    # where g = 0 makes ν = 0: an exact critical point, where the method stays, is a
    # converged cell (it had raised, and been 'diverged' before that)
    ds = adaptive_sweep(Quadratic(np.eye(2)), [1.0, 1.0], [1.0], [0.0], 5, stride=1).to_xarray()
    assert ds.status.item() == Status.ZERO_GRADIENT and ds.steps_run.item() == 1
    assert ds.regime.item() == GDClass.CONVERGED
    # Adam with momentum lands there too, but its m = (0.5, 0.5) would move it on (dividing by
    # √ν = 0; with eps = 1e-300 its next step went to −5e299): no class
    with pytest.raises(ValueError, match=r"eta = 2, beta2 = 0 without a class"):
        adaptive_sweep(Quadratic(np.eye(2)), [1.0, 1.0], [2.0], [0.0], 5, method="adam",
                       beta1=0.5, stride=1)
    # Adam with β₁ = 0 is RMSProp: its m_t = β₁ m_{t−1} = 0 there, and it stays (it had
    # raised on its stored m_{t−1} = g_{t−1})
    ds = adaptive_sweep(Quadratic(np.eye(2)), [1.0, 1.0], [1.0], [0.0], 5, method="adam",
                        beta1=0.0, stride=1).to_xarray()
    assert ds.status.item() == Status.ZERO_GRADIENT and ds.regime.item() == GDClass.CONVERGED
    # β₂ = 0 with a gradient entry 0 elsewhere than at a critical point: no class
    with pytest.raises(ValueError, match=r"eta = 0\.1, beta2 = 0 without a class: .*at step 0"):
        adaptive_sweep(loss, [1.0, 1.0, 0.0], [0.1], [0.0], 5, stride=1)
    # with eps > 0 P is regular: every cell runs its 100 steps, and none diverges
    ds = adaptive_sweep(loss, [1.0, 1.0, 0.0], [0.01, 0.1], [0.9, 0.99], 100,
                        eps=1e-8).to_xarray()
    assert np.all(ds.status == Status.OK) and np.all(ds.steps_run == 100)
    assert not np.any(ds.regime == GDClass.DIVERGED)
