"""The one function every backend runs: compute the cells of a chunk.

``compute_chunk(config, index)`` is what the local loop calls and what Dask workers run, so
a sweep gives the same numbers on one machine or a cluster.
"""

from __future__ import annotations

import numpy as np

from .gd_cells import gd_cells
from .grid import cell_values
from .map_cells import map_cells

_MODELS = {"gd": gd_cells, "reduced": map_cells}
_SMALL_INTS = {"class", "status"}


def compute_cells(config, cells) -> dict:
    """Class and statistics of the given cells.

    Parameters
    ----------
    config : SweepConfig
    cells : array_like of int
        Flat cell indices.

    Returns
    -------
    dict
        Variable name → 1-D array over ``cells``: float64, or int8 (``class``, ``status``)
        or int32 (counts and steps), the types netCDF-3 stores.
    """
    out = _MODELS[config.model](config, cell_values(config, cells))
    for name, array in out.items():
        if np.issubdtype(array.dtype, np.integer):
            out[name] = array.astype(np.int8 if name in _SMALL_INTS else np.int32)
    return out


def compute_chunk(config, index: int) -> dict:
    """:func:`compute_cells` for chunk ``index`` (cells ``config.chunk_cells(index)``)."""
    return compute_cells(config, config.chunk_cells(index))
