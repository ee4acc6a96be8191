"""The one function every backend runs: compute the cells of a chunk.

``compute_chunk(config, index)`` is what the local loop calls and what Dask workers run, so
a sweep gives the same numbers on one machine or a cluster.

Missing values are NaN, never a sentinel or an infinity: a step that never happened
(``first_blowup``, ``steps_to_threshold``: −1 in the kernels) is NaN in the result and −1
on disk, declared as the variable's CF ``_FillValue`` (``stabsim.sweep.store.assemble``); a
statistic that is 0/0 or x/0 in a cell that ran through (status OK) is NaN and the cell's
status becomes UNDEFINED, whose message says why.
"""

from __future__ import annotations

import numpy as np

from .._export import missing_as_nan
from .._status import Status
from .adaptive_cells import adaptive_cells
from .gd_cells import gd_cells
from .grid import cell_values
from .map_cells import map_cells
from .sgd_cells import sgd_cells

_MODELS = {"gd": gd_cells, "reduced": map_cells, "adaptive": adaptive_cells,
           "sgd": sgd_cells}
_SMALL_INTS = {"regime", "status"}
#: integer statistics whose −1 means "never": NaN in the result, −1 (``_FillValue``) on disk
NEVER = ("first_blowup", "steps_to_threshold")


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
        Variable name → 1-D array over ``cells``: float64 (NaN where missing, see the module
        docstring), or int8 (``regime``, ``status``) or int32 (counts and steps), the types
        netCDF-3 stores (every count is at most ``steps``, which ``SweepConfig`` bounds by
        2³¹ − 1).

    Raises
    ------
    OverflowError
        If an integer statistic does not fit its type (it is never wrapped).
    """
    out = _MODELS[config.model](config, cell_values(config, cells))
    status = out["status"]
    for name, array in out.items():
        if name in NEVER:
            out[name] = missing_as_nan(array, array < 0)
        elif np.issubdtype(array.dtype, np.integer):
            out[name] = _narrowed(name, array, np.int8 if name in _SMALL_INTS else np.int32)
        else:
            bad = ~np.isfinite(array)
            status[bad & (status == Status.OK)] = Status.UNDEFINED
            out[name] = np.where(bad, np.nan, array)
    out["status"] = status.astype(np.int8)
    return out


def _narrowed(name, array, dtype):
    """``array`` as ``dtype``, or ``OverflowError`` naming ``name`` if a value does not fit."""
    info = np.iinfo(dtype)
    outside = array[(array < info.min) | (array > info.max)]
    if outside.size:
        raise OverflowError(f"the sweep statistic {name!r} holds {outside[0]}, outside "
                            f"{np.dtype(dtype).name} [{info.min}, {info.max}]")
    return array.astype(dtype)


def compute_chunk(config, index: int) -> dict:
    """:func:`compute_cells` for chunk ``index`` (cells ``config.chunk_cells(index)``)."""
    return compute_cells(config, config.chunk_cells(index))
