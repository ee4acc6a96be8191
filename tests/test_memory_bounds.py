"""Memory is bounded: work that would not fit is refused up front, buffers are capped."""

import tracemalloc

import numpy as np
import pytest

from stabsim._validate import memory_bytes
from stabsim.comparison import compare
from stabsim.flows import central_flow
from stabsim.losses import Minimalist
from stabsim.maps.constrained import constrained_trajectory
from stabsim.maps.reduced import run_reduced, run_reduced_ensemble
from stabsim.sweep import SweepConfig, run_sweep
from stabsim.sweep.config import CELL_BYTES, CHUNK_BYTES

# far beyond any machine: 10^15 saved states
HUGE = 10**15
START = (0.1, 0.0, 0.01, 1.0, 1.0)  # x0, y0, eta, alpha, beta: cycles at the edge


def test_huge_steps_name_steps():
    with pytest.raises(ValueError, match="steps = 1000000000000000"):
        run_reduced(*START, HUGE)
    with pytest.raises(ValueError, match="steps = 1000000000000000"):
        run_reduced_ensemble(*START, HUGE, stride=1)
    with pytest.raises(ValueError, match="steps = 1000000000000000"):
        constrained_trajectory(Minimalist(), [1.0, 0.5], 0.1, HUGE)
    with pytest.raises(ValueError, match="steps = 1000000000000000"):
        compare(Minimalist(), [1.0, 0.5], 0.1, HUGE)
    with pytest.raises(ValueError, match="steps = 1e"):
        central_flow(Minimalist(), [1.0, 0.5], 0.1, float(HUGE))


def test_an_integer_past_int64_is_refused_by_name():
    # steps // stride + 1 = 2 states fit, but 10^20 does not fit the kernel's int64
    with pytest.raises(ValueError, match="steps must be at most 2"):
        run_reduced(*START, 10**20, stride=10**20)


def test_cycle_arrays_are_capped():
    steps = 4 * 10**7
    run_reduced(*START, 10)  # load the compiled kernel outside the measurement
    tracemalloc.start()
    try:
        result = run_reduced(*START, steps, stride=steps)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # 10^6 + 1 boundaries (the default max_cycles), each with seven 8-byte entries (boundary
    # step and H; cycle length, mean x² and the per-cycle extremes of y, y and |x|): 56 bytes,
    # where steps // 4 + 1 would be 10^7 + 1 of them (560 MB); the rest is a few hundred bytes
    assert result.cycles.boundary_step.shape == (10**6 + 1,)
    assert peak < 1.25 * 56 * (10**6 + 1)


def test_cycles_past_max_cycles_are_counted_not_stored():
    full = run_reduced(*START, 10**6)
    capped = run_reduced(*START, 10**6, max_cycles=3)
    assert full.cycles.n_boundaries > 4
    assert capped.cycles.n_boundaries == full.cycles.n_boundaries
    np.testing.assert_array_equal(capped.cycles.boundary_step, full.cycles.boundary_step[:4])
    np.testing.assert_array_equal(capped.cycles.cycle_length, full.cycles.cycle_length[:3])
    np.testing.assert_array_equal(capped.x, full.x)


def test_default_chunks_are_bounded_by_memory():
    # steps = 1 used to give 2.5e8 cells (about 51 GB) per chunk
    config = SweepConfig(model="reduced", grid={"eta": {"start": 0.01, "stop": 0.3, "num": 10**6},
                                                "x0": [0.1, 0.2]}, steps=1)
    assert config.chunk_size == CHUNK_BYTES // CELL_BYTES["reduced"]


def test_a_huge_grid_range_is_refused_in_validation():
    with pytest.raises(ValueError, match="num = 1000000000"):
        SweepConfig(model="reduced", grid={"eta": {"start": 0.01, "stop": 0.3, "num": 10**9}})


def test_run_sweep_refuses_a_result_that_does_not_fit(tmp_path):
    # 10^6 × 10^6 cells of 54 bytes: 54 TB
    grid = {name: {"start": 0.01, "stop": 0.3, "num": 10**6} for name in ("eta", "x0")}
    config = SweepConfig(model="reduced", grid=grid, steps=10)
    assert 3 * 54 * config.n_cells > memory_bytes() / 2
    with pytest.raises(ValueError, match="of 1000000000000 cells"):
        run_sweep(config, tmp_path / "out.nc", progress=False)
    assert list(tmp_path.iterdir()) == []
