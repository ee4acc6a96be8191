"""Bad arguments are refused before any run, allocation or directory."""

import numpy as np
import pytest

from stabsim.comparison import compare
from stabsim.losses import Minimalist, Quadratic
from stabsim.maps.constrained import constrained_trajectory
from stabsim.sweep import SweepConfig, run_sweep

# 10**12 steps would need terabytes of records: a check made after the allocation would
# fail with MemoryError (or take minutes), not with the ValueError naming the argument.
HUGE = 10**12


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"tol": -1.0}, "tol"), ({"max_iter": 0}, "max_iter"), ({"u_ref": [np.nan, 0.0]}, "u_ref")])
def test_constrained_trajectory_checks_before_allocating(kwargs, name):
    with pytest.raises(ValueError, match=name):
        constrained_trajectory(Minimalist(), [1.0, 0.5], 0.1, HUGE, **kwargs)


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"tol": -1.0}, "tol"), ({"max_iter": 0}, "max_iter")])
def test_compare_checks_the_projection_options_even_without_a_crossing(kwargs, name):
    # S = 1 < 2/η = 20: GD never reaches the threshold, so no projection ever runs
    with pytest.raises(ValueError, match=name):
        compare(Quadratic([1.0]), [1.0], 0.1, 5, **kwargs)


@pytest.mark.parametrize(("loss", "params", "match"), [
    ({"name": "quadratic", "A": {"x": 1}}, {}, "quadratic"),
    ({"name": "quadratic", "a": [[1, 2], [3]]}, {}, "'a'"),
    ({"name": "minimalist"}, {"theta0": [1.0, 2.0, 3.0]}, "theta0"),
    ({"name": "scalar_network", "depth": -1}, {}, "depth"),
])
def test_a_bad_loss_table_is_refused_with_no_directory_left(tmp_path, loss, params, match):
    tables = {"sweep": {"model": "gd", "steps": 5}, "grid": {"eta": [0.1]}, "loss": loss,
              "params": params}
    with pytest.raises(ValueError, match=match):
        run_sweep(tables, tmp_path / "out.nc", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_a_swept_loss_parameter_is_checked_for_every_value():
    with pytest.raises(ValueError, match=r"\{'depth': 1\}"):
        SweepConfig(model="gd", grid={"eta": [0.1], "loss.depth": [3, 1]},
                    loss={"name": "scalar_network"}, steps=5)
