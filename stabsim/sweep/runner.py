"""Run a sweep: chunk by chunk, locally or on Dask, resumable, with a progress bar.

The cost estimate (:func:`estimate_seconds`) times a pilot: a few cells spread evenly over
the sweep (after a one-step warm-up that loads the compiled kernels), run for one step and
for ``n`` steps, which fit the time of one call as ``a + b · steps``: ``a`` the
fixed cost of a call (building the losses, starting threads), paid once per chunk, and
``b`` the cost of a step of the pilot's cells, paid by every cell for every step. Scaling
the whole pilot time by the step budget, as it was, multiplied the fixed cost too: 5558 s
estimated for a GD sweep of 1000 cells × 400000 steps on the minimalist loss that took 11 s.
``n`` starts at :data:`PILOT`'s length and doubles (a multiple of the stride, so that the
pilot records as often as the sweep) until the run takes :data:`PILOT_SECONDS` and ten
times the one-step run, so that ``b`` is measured above the noise of ``a``, or reaches the
sweep's steps. Cells that stop early make the estimate pessimistic. It is the compute time
on this machine with its Numba threads (a Dask cluster with more cores finishes sooner),
without the writing and assembling of chunks.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import tempfile
import time
from pathlib import Path

import numpy as np

from .. import _validate as check
from .._progress import progress_bar
from . import backends
from .compute import compute_cells
from .config import SweepConfig
from .result import SweepResult
from .store import (
    ChunkStore,
    assemble,
    check_output,
    check_workdir,
    default_workdir,
    output_temporary,
    remove_path,
    write_dataset,
)

log = logging.getLogger(__name__)

#: pilot size per model: (cells, steps of its first timed run)
PILOT = {"reduced": (1024, 1000), "gd": (4, 100), "adaptive": (4, 100), "sgd": (4, 100)}
#: the timed pilot runs at least this long (unless it runs the sweep's steps): a step of a
#: GD cell on a small loss costs tens of nanoseconds, and a call's fixed cost of a
#: millisecond or so varies by several
PILOT_SECONDS = 0.1


def estimate_seconds(config: SweepConfig, n_cells: int | None = None) -> float:
    """Estimated wall time of ``n_cells`` cells (all by default), from a timed pilot.

    The pilot's cells run for one step (time ``t_1``) and for ``n`` steps (``t_n``: ``n``
    doubles from :data:`PILOT`'s until ``t_n`` is at least :data:`PILOT_SECONDS` and
    ``10 t_1``, or ``n`` the sweep's steps); ``t = a + b · steps`` through both gives the
    fixed cost ``a`` of a call, charged once per chunk of the ``n_cells``
    (``ceil(n_cells / chunk_size)``), and the cost ``b`` of a step of the pilot's ``k``
    cells, charged ``n_cells / k`` times per step of the budget (both at least 0: timing
    noise can tip a difference below it). A sweep of one step has no second length: its
    pilot's time is scaled by ``n_cells / k``.
    """
    if not isinstance(config, SweepConfig):
        raise TypeError(f"config must be a SweepConfig, got {type(config).__name__}")
    n_cells = config.n_cells if n_cells is None else check.nonnegative_int("n_cells", n_cells)
    size, max_steps = PILOT[config.model]
    cells = np.unique(np.linspace(0, config.n_cells - 1, min(size, config.n_cells)).astype(int))
    one = _shortened(config, 1)
    compute_cells(one, cells[:1])  # load the compiled kernels
    t_1 = _timed(one, cells)
    if config.steps == 1:  # no second length to tell the fixed cost from: all of it per cell
        return t_1 * n_cells / cells.size
    # a multiple of the stride (records as often as the sweep's) where the steps allow
    unit = config.stride if config.model != "reduced" else 1
    steps = min(config.steps, unit * -(-max_steps // unit))
    while True:
        pilot = _shortened(config, steps)
        t_n = _timed(pilot, cells)
        if steps == config.steps or t_n >= max(PILOT_SECONDS, 10.0 * t_1):
            break
        steps = min(config.steps, 2 * steps)
    per_step = max(0.0, (t_n - t_1) / (pilot.steps - 1))
    fixed = max(0.0, t_1 - per_step)
    chunks = -(-n_cells // config.chunk_size)
    return chunks * fixed + per_step * (n_cells / cells.size) * config.steps


def _timed(config: SweepConfig, cells) -> float:
    """Seconds ``compute_cells(config, cells)`` takes."""
    start = time.perf_counter()
    compute_cells(config, cells)
    return time.perf_counter() - start


def _shortened(config: SweepConfig, steps: int) -> SweepConfig:
    """``config`` run for ``steps`` steps, its stride cut to the largest that divides them
    (a GD sweep's stride must divide its steps), chunk size by default."""
    return dataclasses.replace(config, steps=steps, stride=math.gcd(steps, config.stride),
                               chunk_size=None)


def check_result_size(config: SweepConfig) -> None:
    """Raise ``ValueError`` if the assembled result would not fit in memory.

    The result is built in memory from the loaded chunks (a second copy) and encoded as a
    whole by the netCDF writer (a third): three times its size must be affordable. Its
    size per cell is read off one cell run for one step.
    """
    one = compute_cells(_shortened(config, 1), np.array([0]))
    per_cell = sum(array.itemsize for array in one.values())
    check.affordable(3 * per_cell * config.n_cells,
                     f"the result of {config.n_cells} cells ({per_cell} bytes each, held "
                     f"three times while it is assembled and written)",
                     "sweep fewer cells, or split the grid over several sweeps")


def missing_cells(config: SweepConfig, workdir) -> int:
    """Number of cells not yet stored in ``workdir`` for this config."""
    done = ChunkStore(workdir, config).completed()
    return sum(config.chunk_cells(i).size for i in range(config.n_chunks) if i not in done)


def run_sweep(config, output=None, *, workdir=None, client=None, scheduler=None,
              progress=None, keep_chunks=False) -> SweepResult:
    """Compute every cell of a sweep and return (and optionally write) the result.

    Parameters
    ----------
    config : SweepConfig, dict or path
        The sweep (a dict of TOML tables, or a TOML file path, is read with
        :meth:`SweepConfig.from_dict` / :meth:`SweepConfig.from_toml`).
    output : path, optional
        Write the result here (``.nc``: netCDF; ``.zarr``: Zarr).
    workdir : path, optional
        Where completed chunks are kept (one subdirectory per config hash); default
        ``<output>.chunks``, or a temporary directory when there is no output (deleted when
        the call ends, interrupted or not: pass ``workdir`` or ``output`` to keep the
        chunks of an interrupted sweep). Running the same config again with the same work
        directory computes only the missing chunks.
    client : distributed.Client, optional
        Run the chunks on this Dask cluster.
    scheduler : str, optional
        Or the address of a Dask scheduler to connect to.
    progress : bool, optional
        Show a progress bar (default: a widget in a Jupyter notebook with ipywidgets, text
        when stderr is a terminal, nothing otherwise; see
        :func:`stabsim._progress.progress_bar`).
    keep_chunks : bool
        Keep the chunk files after the result is assembled (by default they are removed
        once the output is written).

    Returns
    -------
    SweepResult
        Its ``to_xarray()`` is the dataset of ``stabsim.sweep.store.assemble`` (the one
        written to ``output``); identical, bit for bit, however the sweep was run,
        interrupted or resumed.

    Raises
    ------
    stabsim.sweep.store.WorkdirBusyError
        Another sweep is running the same config in the same work directory.

    Notes
    -----
    Ctrl-C stops between chunks (and within a cell of the adaptive and SGD models, which is
    then not stored) and raises ``KeyboardInterrupt``: the completed chunks stay on disk and
    a warning says where; run again with the same ``workdir`` (or ``output``) to resume.
    Without either, the chunks were in a temporary directory, now deleted, and the warning
    says they are lost. Chunk files that are corrupt (unreadable, failing their
    checksum) are named in a ``CorruptChunkWarning`` and computed again. A run that fails
    before its first chunk is stored leaves no work directory behind.
    """
    config = _as_config(config)
    if progress is not None:
        check.boolean("progress", progress)
    check.boolean("keep_chunks", keep_chunks)
    if output is not None:
        check_output(output)
    if workdir is not None:
        check_workdir(workdir)
    check_result_size(config)
    if workdir is None and output is None:
        with tempfile.TemporaryDirectory(prefix="stabsim-sweep-") as tmp:
            ds = _run(ChunkStore(tmp, config), None, client, scheduler, progress,
                      resumable=False)
    else:
        store = ChunkStore(workdir if workdir is not None else default_workdir(output), config)
        ds = _run(store, output, client, scheduler, progress, keep_chunks=keep_chunks,
                  resumable=True)
    # no sweep option is a budget: a reduced-map cell has no cycle target (never MAX_STEPS),
    # and a GD cell's NOT_CONVERGED is the fixed Lanczos budget of stabsim.sweep.gd_cells
    return SweepResult.of(ds, config.model, config.to_dict(), knob=None)


def _run(store, output, client, scheduler, progress, *, resumable, keep_chunks=True):
    """Compute the missing chunks of ``store``, assemble them, and write ``output`` (if
    given; the chunks are then removed unless ``keep_chunks``); return the dataset.
    ``resumable``: whether ``store`` outlives the call (not a temporary directory), as the
    message on Ctrl-C says."""
    with store.open():
        temporary = None if output is None else output_temporary(output, store)
        if temporary is not None:
            remove_path(temporary)  # left by a killed run of this config (we hold its lock)
        try:
            _compute_missing(store, client, scheduler, progress, resumable)
        except BaseException:
            if not store.completed():  # nothing to resume from: leave nothing behind
                store.remove()
            raise
        ds = assemble(store)
        if output is not None:
            write_dataset(ds, output, temporary=temporary)
            if not keep_chunks:
                store.remove()
    return ds


def _compute_missing(store, client, scheduler, progress, resumable) -> None:
    """Compute and save the chunks of ``store`` not on disk (corrupt ones count as not).

    On Ctrl-C, warn what is kept (the command line adds that it was interrupted) and
    re-raise.
    """
    config = store.config
    store.discard_corrupt()
    done = store.completed()
    todo = [i for i in range(config.n_chunks) if i not in done]
    owned = False
    if client is not None or scheduler is not None:
        client, owned = backends.connect(scheduler, client)
        chunks = backends.dask_chunks(client, config, todo)
    else:
        chunks = backends.local_chunks(config, todo)
    bar = _progress_bar(config, done, progress)
    try:
        for index, arrays in chunks:
            store.save(index, arrays)
            bar.update(config.chunk_cells(index).size)
    except KeyboardInterrupt:
        n_saved = len(store.completed())
        if not n_saved:  # run_sweep removes the work directory
            log.warning("none of the %d chunks was finished; nothing is kept", config.n_chunks)
        elif resumable:
            log.warning("%d of %d chunks are saved in %s; run the same config again to "
                        "resume", n_saved, config.n_chunks, store.directory)
        else:
            log.warning("%d of %d chunks were finished in a temporary work directory, which "
                        "is deleted: they are lost; pass run_sweep a workdir (or an output) "
                        "to keep the chunks of an interrupted sweep", n_saved, config.n_chunks)
        raise
    finally:
        chunks.close()
        bar.close()
        if owned:
            client.close()


def _as_config(config) -> SweepConfig:
    if isinstance(config, SweepConfig):
        return config
    if isinstance(config, dict):
        return SweepConfig.from_dict(config)
    if isinstance(config, str | Path):
        return SweepConfig.from_toml(config)
    raise TypeError(f"config must be a SweepConfig, a dict or a TOML path, "
                     f"got {type(config).__name__}")


def _progress_bar(config, done, progress):
    initial = sum(config.chunk_cells(i).size for i in done)
    return progress_bar(config.n_cells, enabled=progress, initial=initial, unit="cell",
                        desc="sweep")
