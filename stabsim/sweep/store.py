"""Completed chunks on disk, and the assembled result.

Each finished chunk is one small ``.npz`` file in a work directory named by the config's
hash (:attr:`SweepConfig.key`, which covers the versions of stabsim, NumPy and Numba,
stabsim's sources, and the source files of a loss family defined outside stabsim),
written to a temporary file and moved into place with ``os.replace``, so a file either is
complete or does not exist: a sweep killed at any moment (even ``kill -9``) and started
again with the same config computes only the missing chunks.

Every chunk carries a SHA-256 checksum of its arrays (names, dtypes, shapes and bytes). A
chunk that cannot be read, fails its checksum or has the wrong variables or length is
reported by file name and computed again.

One sweep at a time works in a config's directory: :meth:`ChunkStore.open` takes an
exclusive ``flock`` on its ``lock`` file (released by the kernel when the process ends,
even by ``kill -9``) and a second sweep gets :class:`WorkdirBusyError` naming the holder.
Only the lock holder deletes anything there: its own leftovers from a killed earlier run.

The result is assembled from the chunks into an ``xarray.Dataset`` and written to netCDF
(scipy backend, no extra dependency) or, for a ``.zarr`` path, Zarr.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import re
import shutil
import socket
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from .. import __version__
from .. import _validate as check
from .._export import finish, integer_on_disk, write_netcdf
from .classify import flag_attrs, status_attrs
from .compute import NEVER
from .grid import coordinates

_CONFIG_FILE = "config.json"
_LOCK_FILE = "lock"
_CHECKSUM = "sha256"  # the array of a chunk file that holds the checksum of the others
_CHUNK_NAME = re.compile(r"chunk_(\d{7})\.npz")


class WorkdirBusyError(RuntimeError):
    """Another sweep is working in the directory of this config."""


class CorruptChunkError(ValueError):
    """A chunk file that cannot be read, fails its checksum, or has the wrong shape."""


class CorruptChunkWarning(UserWarning):
    """A corrupt chunk file was found and will be computed again."""


def default_workdir(output) -> Path:
    """Where chunks of a sweep writing ``output`` go by default: ``<output>.chunks``."""
    output = Path(output)
    return output.with_name(output.name + ".chunks")


def output_temporary(output, store) -> Path:
    """The name ``output`` is written under, by the sweep holding ``store``, before it is
    moved into place.

    It is named after what the store's lock guards (the config's key and the work
    directory), so the lock holder may delete one left by a killed run of its own, and
    never touches the temporary of a sweep with another config or work directory.
    """
    output = Path(output)
    where = hashlib.sha256(str(store.directory.resolve()).encode()).hexdigest()[:8]
    return output.with_name(f".{output.name}.{store.config.key}-{where}.tmp")


def checksum(arrays: dict) -> str:
    """SHA-256 (hex) of the arrays' names, dtypes, shapes and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}\0{array.dtype.str}\0{array.shape}\0".encode())
        digest.update(array.data)
    return digest.hexdigest()


class ChunkStore:
    """The completed chunks of one sweep config, in ``root / config.key``.

    Parameters
    ----------
    root : path
        Work directory shared by sweeps; each config gets its own subdirectory.
    config : SweepConfig

    Notes
    -----
    Reading (:meth:`completed`, :meth:`load`) needs no lock; everything that writes or
    deletes runs inside :meth:`open`, which holds the directory's lock.
    """

    def __init__(self, root, config):
        self.config = config
        self.directory = Path(root) / config.key
        self._lock_fd = None

    @contextlib.contextmanager
    def open(self):
        """Hold this config's directory for the duration of the ``with`` block.

        Creates the directory, takes its lock (:class:`WorkdirBusyError` if another
        sweep has it), deletes the temporary files of killed earlier runs (no live sweep
        can own them: it would hold the lock) and writes ``config.json``.
        """
        self._lock()
        try:
            for leftover in self.directory.glob("*.tmp"):
                leftover.unlink(missing_ok=True)
            _atomic_write(self.directory / _CONFIG_FILE,
                          lambda f: f.write(self.config.to_json().encode()))
            yield self
        finally:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    def _lock(self) -> None:
        import fcntl  # POSIX file locks (Linux, macOS): imported here, where they are needed

        path = self.directory / _LOCK_FILE
        while True:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 1024).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise WorkdirBusyError(
                    f"another sweep is working in {self.directory} ({holder}); wait for it "
                    f"to finish, or give this one another output or work directory"
                ) from None
            # the holder may have removed the directory between our open and flock: then
            # the file we locked is no longer the lock file, and we start again
            try:
                current = os.stat(path)
            except FileNotFoundError:
                current = None
            opened = os.fstat(fd)
            if current is not None and (current.st_dev, current.st_ino) == \
                    (opened.st_dev, opened.st_ino):
                break
            os.close(fd)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S %Z")
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since {stamp}".encode())
        self._lock_fd = fd

    def _require_lock(self) -> None:
        if self._lock_fd is None:
            raise RuntimeError("the chunk store must be opened (ChunkStore.open) to write")

    def path(self, index: int) -> Path:
        return self.directory / f"chunk_{index:07d}.npz"

    def completed(self) -> set[int]:
        """Indices of the chunk files on disk (not verified: see :meth:`discard_corrupt`)."""
        found = (_CHUNK_NAME.fullmatch(p.name) for p in self.directory.glob("chunk_*.npz"))
        return {int(m.group(1)) for m in found if m and int(m.group(1)) < self.config.n_chunks}

    def save(self, index: int, arrays: dict) -> None:
        """Write chunk ``index`` atomically, with the checksum of its arrays."""
        self._require_lock()
        if _CHECKSUM in arrays:
            raise ValueError(f"a chunk variable may not be named {_CHECKSUM!r}")
        stamped = {**arrays, _CHECKSUM: np.array(checksum(arrays))}
        _atomic_write(self.path(index), lambda f: np.savez(f, **stamped))

    def load(self, index: int) -> dict:
        """Chunk ``index``, verified; :class:`CorruptChunkError` naming the file if not."""
        path = self.path(index)
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
        except Exception as exc:  # any failure to read (truncated, empty, not a zip, pickled)
            raise CorruptChunkError(f"chunk file {path} is not a readable .npz of plain "
                                    f"arrays ({type(exc).__name__})") from None
        stored = arrays.pop(_CHECKSUM, None)
        if stored is None or stored.shape != () or stored.dtype.kind != "U":
            raise CorruptChunkError(f"chunk file {path} has no checksum")
        if str(stored) != checksum(arrays):
            raise CorruptChunkError(f"chunk file {path} fails its checksum")
        cells = self.config.chunk_cells(index).size
        wrong = sorted(name for name, array in arrays.items() if array.shape != (cells,))
        if not arrays or wrong:
            raise CorruptChunkError(f"chunk file {path} does not hold {cells} cells "
                                    f"(variables {wrong or 'none'})")
        return arrays

    def discard_corrupt(self) -> list[int]:
        """Load every chunk on disk; delete each corrupt one with a warning naming it.

        Returns
        -------
        list of int
            The indices deleted (the sweep computes them again).
        """
        self._require_lock()
        bad = []
        for index in sorted(self.completed()):
            try:
                self.load(index)
            except CorruptChunkError as exc:
                warnings.warn(f"{exc}; computing chunk {index} again", CorruptChunkWarning,
                              stacklevel=3)
                self.path(index).unlink(missing_ok=True)
                bad.append(index)
        return bad

    def remove(self) -> None:
        """Delete this config's chunks (and the work directory, if nothing else is in it)."""
        self._require_lock()
        shutil.rmtree(self.directory, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.directory.parent.rmdir()


def _file_mode(directory: bool = False) -> int:
    """0o666 (0o777 for a directory) less the process umask: what ``open`` (``mkdir``)
    would give a new file (0644, 0755 for the usual umask 022)."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


def _atomic_write(path: Path, write, temporary: Path | None = None, *,
                  by_name: bool = False) -> None:
    """Call ``write(file)`` on a temporary file next to ``path``, then move it there.

    ``temporary`` names the temporary file (default: a new unique name); the result gets
    the permissions of a newly created file (``mkstemp`` would leave it 0600). With
    ``by_name``, ``write`` gets the temporary file's name instead (for writers that open
    the file themselves, such as the netCDF-4 libraries).
    """
    if temporary is None:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    else:
        tmp = str(temporary)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            if not by_name:
                write(f)
        if by_name:
            write(tmp)
        os.chmod(tmp, _file_mode())
        with open(tmp, "rb") as f:
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
    per statistic plus ``regime``; attributes ``config`` (canonical JSON), ``config_key``,
    ``model`` and ``versions`` (JSON). Every chunk is verified as it is read.
    """
    import xarray as xr

    config = store.config
    parts = [store.load(i) for i in range(config.n_chunks)]
    for index, part in enumerate(parts):
        if set(part) != set(parts[0]):
            raise CorruptChunkError(f"chunk file {store.path(index)} holds the variables "
                                    f"{sorted(part)}, chunk 0 {sorted(parts[0])}")
    flat = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
    coords = coordinates(config)
    dims = config.dims
    if config.combine == "zip":
        coords = {name: ("cell", values) for name, values in coords.items()}
    data = {name: (dims, array.reshape(config.shape)) for name, array in flat.items()}
    ds = xr.Dataset(data, coords=coords)
    ds["regime"].attrs.update(flag_attrs(config.model))
    ds["status"].attrs.update(status_attrs())
    for name in NEVER:
        if name in ds:  # NaN (never) in memory, the integer −1 on disk
            integer_on_disk(ds[name])
            ds[name].attrs["comment"] = "NaN (stored as the _FillValue -1): never happened"
    ds.attrs.update(config=config.to_json(), config_key=config.key, model=config.model,
                    versions=json.dumps(versions(), sort_keys=True),
                    title=f"stabsim phase-diagram sweep ({config.model})")
    return finish(ds, json.loads(config.to_json()))


def remove_path(path: Path) -> None:
    """Delete a file or a directory tree, if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


#: the metadata files at the top of a Zarr store (format 2 and format 3)
_ZARR_MARKERS = (".zgroup", ".zarray", "zarr.json")


def _refuse_foreign_directory(path: Path) -> None:
    """Raise ``ValueError`` if ``path`` is a directory with files in it that is not a Zarr
    store: writing a ``.zarr`` result replaces the directory, and with it those files."""
    if (path.is_dir() and not path.is_symlink() and any(path.iterdir())
            and not any((path / marker).is_file() for marker in _ZARR_MARKERS)):
        raise ValueError(f"the output {path} is a directory that is not a Zarr store; "
                         "writing the result would delete what it holds: name a new path")


#: the names of a netCDF result (any other name but ``.zarr`` is refused)
NETCDF_SUFFIXES = (".nc", ".nc4", ".cdf")


def check_workdir(path) -> None:
    """Raise ``ValueError`` unless ``path`` can be a sweep's work directory: an existing
    directory, or a path where one can be made (checked before any work)."""
    check.writable_directory("the work directory", path)


def check_output(path) -> None:
    """Raise ``ValueError`` unless a result can be written to ``path``.

    Made before a sweep runs: ``path`` must end in ``.zarr`` or a netCDF suffix
    (:data:`NETCDF_SUFFIXES`), must not be a directory (or, for ``.zarr``, a file, or a
    directory with files in it that is not a Zarr store, which the result would replace),
    and a file must be creatable next to it (probed by creating and deleting one, which
    also catches read-only and virtual file systems such as ``/proc``).
    """
    path = Path(path)
    zarr = path.suffix == ".zarr"
    if path.suffix not in NETCDF_SUFFIXES and not zarr:  # a result.csv would be netCDF
        raise ValueError(f"the output {path} must end in .nc (netCDF) or .zarr (a Zarr "
                         f"store), got {path.suffix or 'no suffix'!r}")
    if path.is_dir() and not zarr:
        raise ValueError(f"the output {path} is a directory; name a file")
    if path.exists() and zarr and not path.is_dir():
        raise ValueError(f"the output {path} is a file, not a Zarr store")
    if zarr:
        _refuse_foreign_directory(path)
    check.writable_in(f"the output {path}", check.existing_ancestor(path.parent))


def write_dataset(ds, path, *, temporary=None) -> Path:
    """Write ``ds`` to netCDF (:func:`stabsim._export.write_netcdf`: netCDF-4 when netCDF4 or
    h5netcdf is installed, else netCDF-3), or Zarr when ``path`` ends in ``.zarr``.

    The file appears whole or not at all: it is written under ``temporary`` (default: a
    new unique name next to ``path``), then moved into place.
    """
    path = Path(path)
    if path.suffix == ".zarr":
        try:
            import zarr  # noqa: F401
        except ImportError:
            raise ValueError(f"writing {path} needs the zarr package; or name the output "
                             f"'.nc' for netCDF") from None
        _refuse_foreign_directory(path)
        if temporary is None:
            tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=path.name, suffix=".tmp"))
            tmp.chmod(_file_mode(directory=True))  # mkdtemp makes it 0700
        else:
            tmp = Path(temporary)
            remove_path(tmp)
        with warnings.catch_warnings():
            # zarr 3 warns on every write that consolidated metadata (which xarray writes so
            # that a store opens fast) is an extension of its format 3, read by zarr and
            # xarray alike: nothing for the user to act on
            warnings.filterwarnings("ignore", message="Consolidated metadata is currently")
            ds.to_zarr(tmp, mode="w")
        remove_path(path)
        os.replace(tmp, path)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, lambda name: write_netcdf(ds, name), temporary, by_name=True)
    return path
