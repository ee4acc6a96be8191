"""The sweeps made by a function call (adaptive, SGD, the uv model's catapults): their grids
and the codes their datasets carry, as ``run_sweep``'s do."""

import numpy as np
import pytest

from stabsim._status import Status
from stabsim.losses import Quadratic, QuadraticRegression
from stabsim.sweep.adaptive_cells import adaptive_sweep
from stabsim.sweep.catapult import catapult_boundaries, catapult_sweep
from stabsim.sweep.sgd_cells import sgd_sweep

REGRESSION = QuadraticRegression.random(4, 8, seed=1)

SWEEPS = {
    "adaptive": lambda eta, other, steps=20, **kw: adaptive_sweep(Quadratic([1.0]), [1.0], eta,
                                                                  other, steps, **kw),
    "sgd": lambda eta, other, steps=20, **kw: sgd_sweep(REGRESSION, np.zeros(4), eta, other,
                                                        steps=steps, **kw),
    "catapult": lambda eta, other, steps=20, **kw: catapult_sweep(other, eta, steps=steps, **kw),
}
#: a cell's second axis: β₂, a batch size, a width
OTHER = {"adaptive": [0.9], "sgd": [4], "catapult": [8]}


@pytest.mark.parametrize("sweep", SWEEPS)
def test_status_carries_the_flag_attributes_of_its_codes(sweep):
    # README: coded variables, status included, say what their codes mean; run_sweep's did,
    # these three sweeps' had no flag_values or flag_meanings on status
    ds = SWEEPS[sweep]([0.1], OTHER[sweep]).to_xarray()
    attrs = ds["status"].attrs
    np.testing.assert_array_equal(attrs["flag_values"], [code.value for code in Status])
    assert attrs["flag_meanings"].split() == [code.name.lower() for code in Status]
    assert int(ds["status"].values.ravel()[0]) == Status.OK


@pytest.mark.parametrize("sweep", SWEEPS)
@pytest.mark.parametrize("empty", ["eta", "other"])
def test_an_empty_axis_is_refused(sweep, empty):
    # an empty grid had returned status OK with no cell, where SweepConfig refuses one
    eta, other = ([], OTHER[sweep]) if empty == "eta" else ([0.1], [])
    with pytest.raises(ValueError, match="is empty"):
        SWEEPS[sweep](eta, other)


@pytest.mark.parametrize("sweep", ["adaptive", "sgd"])
@pytest.mark.parametrize("window", [1.5, 0.0])
def test_a_late_window_outside_the_records_is_refused(sweep, window):
    # window is the fraction of the records in the late window: adaptive_sweep took 1.5 and
    # sliced its n records from n − ceil(1.5n) < 0, from the end: the last 2 of 3 records here
    with pytest.raises(ValueError, match=r"window must (lie in \(0, 1\]|be finite and > 0)"):
        SWEEPS[sweep]([0.1], OTHER[sweep], window=window)


@pytest.mark.parametrize("sweep", ["adaptive", "sgd"])
def test_a_sweep_of_no_steps_is_refused(sweep):
    # sgd_sweep(steps=0) classified its cells, which never ran, as converged (regime 0),
    # where adaptive_sweep refused steps = 0
    with pytest.raises(ValueError, match="steps must be >= 1"):
        SWEEPS[sweep]([0.1], OTHER[sweep], steps=0)


def test_catapult_boundaries_refuse_no_widths_or_seeds():
    with pytest.raises(ValueError, match="widths is empty"):
        catapult_boundaries([], steps=10)
    with pytest.raises(ValueError, match="seeds is empty"):
        catapult_boundaries([8], seeds=[], steps=10)


def test_run_sweep_of_something_not_a_config_is_a_type_error():
    # estimate_seconds said TypeError, run_sweep ValueError, for the same mistake
    from stabsim.sweep import run_sweep
    from stabsim.sweep.runner import estimate_seconds

    for call in (run_sweep, estimate_seconds):
        with pytest.raises(TypeError, match="config must be a SweepConfig"):
            call(42)


def test_a_loss_check_flag_that_is_not_a_bool_is_a_type_error():
    # as every flag of stabsim's (_validate.boolean); it had been a ValueError
    from stabsim.losses import Loss

    with pytest.raises(TypeError, match="check must be True or False"):
        Loss(Quadratic([1.0]).params, 1, check="no")
