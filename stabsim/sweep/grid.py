"""Which parameter values each cell of a sweep has.

Cells are numbered in C order over the result's shape (the last swept parameter varies
fastest), or in list order with ``combine = "zip"``. Chunks are runs of consecutive cells
(:meth:`SweepConfig.chunk_cells`).
"""

from __future__ import annotations

import numpy as np

from .config import FIXED_ONLY, LOSS_MODELS, LOSS_PREFIX, PARAMETERS, SweepConfig


def coordinates(config: SweepConfig) -> dict:
    """Coordinate arrays of the result: one per swept parameter.

    With ``combine = "product"`` each is the dimension coordinate of its own dimension;
    with ``"zip"`` all lie along the dimension ``cell``.
    """
    return {name: np.asarray(values) for name, values in config.grid.items()}


def cell_values(config: SweepConfig, cells) -> dict:
    """Every parameter's value at the given cells.

    Parameters
    ----------
    config : SweepConfig
    cells : ndarray of int
        Flat cell indices.

    Returns
    -------
    dict
        Model parameter name → array over ``cells`` (defaults and fixed values broadcast;
        the parameters that cannot be swept, such as ``theta0``, stay as given), and for
        the models on a loss the key ``"loss"`` → a list of one dict of family parameters
        per cell.
    """
    cells = np.asarray(cells, dtype=np.int64)
    coords = coordinates(config)
    if config.combine == "product":
        positions = dict(zip(config.grid, np.unravel_index(cells, config.shape), strict=True))
    else:
        positions = dict.fromkeys(config.grid, cells)
    swept = {name: coords[name][positions[name]] for name in config.grid}
    out = {}
    for name, default in PARAMETERS[config.model].items():
        if name in swept:
            out[name] = swept[name]
        elif name in FIXED_ONLY:
            out[name] = config.params.get(name, default)
        else:
            out[name] = np.full(cells.size, config.params.get(name, default))
    if config.model in LOSS_MODELS:
        fixed = {k: v for k, v in config.loss.items() if k != "name"}
        family = {name[len(LOSS_PREFIX):]: values for name, values in swept.items()
                  if name.startswith(LOSS_PREFIX)}
        if family:
            out["loss"] = [dict(fixed, **{k: v[i].item() for k, v in family.items()})
                           for i in range(cells.size)]
        else:  # one loss for every cell: one dict, read only
            out["loss"] = [fixed] * cells.size
    return out
