"""Phase-diagram sweeps: where the self-stabilisation theory holds, and where it breaks.

A sweep runs the reduced (x, y) map, or a gradient method on a loss, over a grid (or
lists) of parameters, classifies every cell (``stabsim.sweep.classify``), and returns a
:class:`SweepResult` whose ``to_xarray()`` is an ``xarray.Dataset`` with one dimension per
swept parameter, optionally written to netCDF or
Zarr with the config and package versions as attributes. Work is done in chunks, locally
with Numba threads or on a Dask cluster through the same chunk function; completed chunks
are kept on disk so an interrupted sweep resumes where it stopped.

>>> from stabsim.sweep import SweepConfig, run_sweep
>>> config = SweepConfig(model="reduced", grid={"eta": [0.01, 0.1], "x0": [1e-3, 0.1]},
...                      steps=1000)
>>> run_sweep(config).to_xarray()["regime"].shape
(2, 2)
"""

from .._lazy import lazy_names

#: each name and its module, imported on first use (so that ``stabsim --help`` and the
#: command line's parser load no engine)
_HOME = {name: f"{__name__}.{module}" for name, module in (
    ("GDClass", "classify"), ("MapClass", "classify"), ("PARAMETERS", "config"),
    ("SweepConfig", "config"), ("SweepResult", "result"), ("estimate_seconds", "runner"),
    ("run_sweep", "runner"))}
__all__ = sorted(_HOME)
__getattr__, __dir__ = lazy_names(__name__, _HOME)
