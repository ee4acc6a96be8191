"""Completed chunks on disk, and the assembled result.

Each finished chunk is one small ``.npz`` file in a work directory named by the config's
hash (:attr:`SweepConfig.key`), written to a temporary file and moved into place with
``os.replace``, so a file either is complete or does not exist: a sweep killed at any
moment (even ``kill -9``) and started again with the same config computes only the
missing chunks. The result is assembled from the chunks into an ``xarray.Dataset`` and
written to netCDF (scipy backend, no extra dependency) or, for a ``.zarr`` path, Zarr.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .. import __version__
from .classify import flag_attrs
from .grid import coordinates

_CONFIG_FILE = "config.json"


def default_workdir(output) -> Path:
    """Where chunks of a sweep writing ``output`` go by default: ``<output>.chunks``."""
    output = Path(output)
    return output.with_name(output.name + ".chunks")


class ChunkStore:
    """The completed chunks of one sweep config, in ``root / config.key``.

    Parameters
    ----------
    root : path
        Work directory shared by sweeps; each config gets its own subdirectory.
    config : SweepConfig

    Notes
    -----
    Opening the store deletes temporary files left by a killed run, so one sweep at a time
    may use a config's directory.
    """

    def __init__(self, root, config):
        self.config = config
        self.directory = Path(root) / config.key
        self.directory.mkdir(parents=True, exist_ok=True)
        for leftover in self.directory.glob("*.tmp"):
            leftover.unlink(missing_ok=True)
        _atomic_write(self.directory / _CONFIG_FILE,
                      lambda f: f.write(config.to_json().encode()))

    def path(self, index: int) -> Path:
        return self.directory / f"chunk_{index:07d}.npz"

    def completed(self) -> set[int]:
        """Indices of the chunks on disk."""
        return {int(p.stem.split("_")[1]) for p in self.directory.glob("chunk_*.npz")}

    def save(self, index: int, arrays: dict) -> None:
        """Write chunk ``index`` atomically."""
        _atomic_write(self.path(index), lambda f: np.savez(f, **arrays))

    def load(self, index: int) -> dict:
        with np.load(self.path(index)) as data:
            return {name: data[name] for name in data.files}

    def remove(self) -> None:
        """Delete this config's chunks (and the work directory, if nothing else is in it)."""
        shutil.rmtree(self.directory, ignore_errors=True)
        try:
            self.directory.parent.rmdir()
        except OSError:
            pass


def _atomic_write(path: Path, write) -> None:
    """Call ``write(file)`` on a temporary file next to ``path``, then move it there."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def versions() -> dict:
    """Versions of Python and of the packages that computed a result."""
    import numba
    import scipy
    import xarray

    return {"stabsim": __version__, "python": platform.python_version(),
            "numpy": np.__version__, "numba": numba.__version__, "scipy": scipy.__version__,
            "xarray": xarray.__version__}


def assemble(store: ChunkStore):
    """The result of a finished sweep as an ``xarray.Dataset``.

    One dimension per swept parameter (``cell`` for ``combine = "zip"``), one data variable
    per statistic plus ``class``; attributes ``config`` (canonical JSON), ``config_key``,
    ``model`` and ``versions`` (JSON).
    """
    import xarray as xr

    config = store.config
    parts = [store.load(i) for i in range(config.n_chunks)]
    flat = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
    coords = coordinates(config)
    dims = config.dims
    if config.combine == "zip":
        coords = {name: ("cell", values) for name, values in coords.items()}
    data = {name: (dims, array.reshape(config.shape)) for name, array in flat.items()}
    ds = xr.Dataset(data, coords=coords)
    ds["class"].attrs.update(flag_attrs(config.model))
    ds.attrs.update(config=config.to_json(), config_key=config.key, model=config.model,
                    versions=json.dumps(versions(), sort_keys=True),
                    title=f"stabsim phase-diagram sweep ({config.model})")
    return ds


def write_dataset(ds, path) -> Path:
    """Write ``ds`` to netCDF-3 (scipy backend), or Zarr when ``path`` ends in ``.zarr``.

    The file appears whole or not at all (written to a temporary name, then moved).
    """
    path = Path(path)
    if path.suffix == ".zarr":
        try:
            import zarr  # noqa: F401
        except ImportError:
            raise ValueError(f"writing {path} needs the zarr package; or name the output "
                             f"'.nc' for netCDF") from None
        tmp = path.with_name(path.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        ds.to_zarr(tmp, mode="w")
        shutil.rmtree(path, ignore_errors=True)
        os.replace(tmp, path)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, lambda f: f.write(ds.to_netcdf(engine="scipy")))
    return path
