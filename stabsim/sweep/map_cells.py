"""Sweep cells of the reduced (x, y) map, through its ensemble kernel.

All cells of a chunk run as one ensemble (``maps.reduced.run_reduced_ensemble`` with
statistics: SIMD across cells, threads across blocks), which agrees bit for bit with the
one-trajectory reference path, so the numbers do not depend on chunking or thread count.

Statistics (per cell)
---------------------
``status``, ``steps_run``
    The ``Status`` code (OK, NONFINITE, LEFT_DOMAIN or UNDERFLOW) and the step the
    trajectory stopped at (``steps`` if it ran through).
``cycles``
    Completed cycles I → II → III → IV → I (cycle boundaries − 1, never negative).
``first_blowup``
    First step entering phase III from phase II (x² reaches δ² while y > 0), −1 if never.
``y_max``, ``y_min``, ``max_abs_x``
    Extremes over every state of the run.
``final_rel_sharpness``
    ``1 + η y_T / 2`` at the final state: the sharpness in units of 2/η, since
    ``y ≈ S − 2/η`` (docs/theory.md §1). For LEFT_DOMAIN and UNDERFLOW it is the offending
    state's (≤ 1/2 for LEFT_DOMAIN).
``energy_growth``
    ``E_T / E_0``, the energy ``E = H − H_min`` of ``stabsim.sweep.classify`` at the final
    state over its value at the start.
"""

from __future__ import annotations

import numpy as np

from ..maps.reduced import run_reduced_ensemble
from .classify import classify_map, map_energy


def map_cells(config, values: dict) -> dict:
    """Statistics and classes of reduced-map cells.

    Parameters
    ----------
    config : SweepConfig
        With ``model = "reduced"``.
    values : dict
        The cells' parameter values (``grid.cell_values``).

    Returns
    -------
    dict
        Name → array over the cells: ``class`` and the statistics of the module docstring.
    """
    eta, alpha, beta = values["eta"], values["alpha"], values["beta"]
    x0, y0 = values["x0"], values["y0"]
    result = run_reduced_ensemble(x0, y0, eta, alpha, beta, config.steps, stats=True,
                                  max_cycles=1)
    c = result.cycles
    energy_start = map_energy(x0, y0, alpha, beta)
    energy_end = map_energy(result.x_final, result.y_final, alpha, beta)
    with np.errstate(all="ignore"):  # inf or NaN where a state overflowed: UNDEFINED later
        growth = energy_end / energy_start
        final_rel_sharpness = 1.0 + 0.5 * result.eta * result.y_final
    return {
        "regime": classify_map(result.status_codes, c.n_boundaries, energy_start, energy_end),
        "status": result.status_codes,
        "steps_run": result.stop_step,
        "cycles": c.completed_cycles,
        "first_blowup": c.first_blowup,
        "y_max": c.y_max,
        "y_min": c.y_min,
        "max_abs_x": c.max_abs_x,
        "final_rel_sharpness": final_rel_sharpness,
        "energy_growth": growth,
    }
