"""Sweep cells of a gradient method on a loss: one exact run per cell, summarised.

A compiled kernel runs the GD engine (``maps._gd_kernels.gd_steps``) once per cell, for the
whole budget of steps, recording the loss, gradient norm and sharpness every ``stride``
steps in the cell's own buffers, and reduces them to the statistics below; blocks of cells
run on threads (the kernel releases the GIL), one loss at a time. Cells are independent, so
the numbers do not depend on the thread count or on how the cells are grouped into blocks
and chunks.

Statistics (per cell; ``r_t`` is the relative sharpness of ``stabsim.sweep.classify``)
-------------------------------------------------------------------------------------
``initial_loss``, ``final_loss``, ``peak_loss``, ``late_peak_loss``
    L at the start, at the last recorded state, the maximum over recorded states, and the
    maximum over the late window.
``final_rel_sharpness``, ``mean_rel_sharpness``, ``max_rel_sharpness``
    ``r`` at the last recorded state, its mean over the late window, its maximum
    (for GD, ``r = S η / 2``). The mean is arithmetic for GD and the momentum methods, and
    harmonic for normalised GD and GD on sqrt L: their iterates settle into a period-2
    orbit across the minimiser manifold, at distances a and b on either side of it, where
    ``r`` alternates between values whose reciprocals sum to 2 (the step maps a to −b:
    ``h_a λ = (a + b)/a``, ``h_b λ = (a + b)/b``), so the harmonic mean is exactly 1 at
    the edge of stability while the arithmetic mean is not. Both means need records on
    both sides of the orbit, which ``SweepConfig`` ensures by refusing an even ``stride``
    (with one, every record falls on one side).
``late_max_rel_sharpness``
    The maximum of ``r`` over the late window: ≥ 1 when the sharpness still reaches the
    threshold there (the "held at 2/η" test of ``classify_gd``).
``steps_to_threshold``
    The first recorded step with ``r_t ≥ 1`` (−1 if never): exact when ``stride = 1``.
``steps_run``, ``status``
    Steps taken and the run's ``Status`` code.
A run that stops early keeps the records made before it stopped; with none, the
statistics are NaN. One that stops at a critical point (ZERO_GRADIENT) keeps that state's
record too, for the loss statistics only: the step from it, and ``r`` there, are undefined,
so the ``r`` statistics are those of the states before it.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import math

import numpy as np

from .._jit import jit
from .._status import Status
from .._threads import in_threads, kernel_threads
from ..losses import FAMILIES, Loss, make_loss
from ..losses._engines import engine_for
from ..maps import _gd_kernels as engine
from ..maps.gd import (
    METHODS,
    eigen_config,
    resolve_loss_min,
    stability_threshold,
    thick_after_stall,
)
from .classify import classify_statistics

FLOAT_STATS = ("initial_loss", "final_loss", "peak_loss", "final_rel_sharpness",
               "mean_rel_sharpness", "max_rel_sharpness", "late_max_rel_sharpness",
               "late_peak_loss")
INT_STATS = ("status", "steps_run", "steps_to_threshold")
_OK = int(Status.OK)
_ZERO_GRADIENT = int(Status.ZERO_GRADIENT)
_INTERRUPTED = int(Status.INTERRUPTED)
_NOT_CONVERGED = int(Status.NOT_CONVERGED)
_RANDOM_SUFFIX = ".random"
EIG_TOL = 1e-10  #: relative Lanczos residual of every cell (run_gd's default)
EIG_MAX_PRODUCTS = 1000  #: Lanczos budget per measurement (run_gd's default)


@jit
def _rel_sharpness(rule, eta, base, sharp, loss, gnorm, loss_min):
    """S / threshold at one state: ``S h / 2`` with the effective step h of the rule."""
    return 0.5 * sharp * engine.effective_step(rule, eta, base, loss, gnorm, loss_min)


@jit
def _nan_max(a, b):
    """max(a, b), NaN if either is (an undefined r makes its statistics undefined)."""
    return a + b if np.isnan(a) or np.isnan(b) else max(a, b)


@jit
def _summarise(rule, eta, base, loss_min, stride, window, kept, stepped, rec_loss, rec_gnorm,
               rec_sharp, out_float, out_int):
    """Reduce the first ``kept`` records of a cell to its statistics (see module docstring),
    those of ``r`` to the first ``stepped`` (the states a step was taken from)."""
    if kept == 0:
        out_float[:] = np.nan
        out_int[2] = -1
        return
    late = kept - max(1, math.ceil(window * kept))
    varying_step = rule == engine.NORMALISED or rule == engine.SQRT_LOSS
    peak = rec_loss[0]
    late_peak = -np.inf
    r_max = -np.inf
    r_late_max = -np.inf
    r_sum = 0.0
    first = -1
    r = np.nan
    for t in range(kept):
        peak = max(peak, rec_loss[t])
        if t >= late:
            late_peak = max(late_peak, rec_loss[t])
        if t >= stepped:
            continue
        r = _rel_sharpness(rule, eta, base, rec_sharp[t, 0], rec_loss[t], rec_gnorm[t], loss_min)
        r_max = _nan_max(r_max, r)
        if first < 0 and r >= 1.0:
            first = t * stride
        if t >= late:
            r_sum += r if not varying_step else 1.0 / r
            r_late_max = _nan_max(r_late_max, r)
    in_window = stepped - late
    out_float[0] = rec_loss[0]
    out_float[1] = rec_loss[kept - 1]
    out_float[2] = peak
    out_float[3] = r
    if in_window <= 0:  # no r in the late window
        out_float[4] = np.nan
        r_late_max = np.nan
    else:
        out_float[4] = r_sum / in_window if not varying_step else in_window / r_sum
    out_float[5] = r_max if stepped > 0 else np.nan
    out_float[6] = r_late_max
    out_float[7] = late_peak
    out_int[2] = first


@jit
def gd_cells_kernel(p, eigen, cells, theta0, rule, eta, momentum, base, loss_min, steps, stride,
                    divergence_norm, window, out_float, out_int):
    """Run one gradient method per cell on the loss of record ``p``, and summarise it.

    Cell ``i = cells[c]`` starts at ``theta0[c]`` with ``eta[i]``, ``momentum[i]``,
    ``loss_min[i]``; ``base[i]`` is ``2 / threshold`` (the constant effective step of GD and
    the momentum methods). Writes rows i of ``out_float`` (:data:`FLOAT_STATS`) and
    ``out_int`` (:data:`INT_STATS`).
    """
    n_rec = steps // stride + 1
    d = theta0.shape[1]
    # one set of buffers for all the cells, set afresh per cell: the records need no clearing
    # (the statistics read only the rows a run wrote), and a cell that diverges at once
    # costs less than zeroing them
    state = engine.GDState(np.empty(d), np.empty(d), np.empty(d), np.empty(d),
                           np.empty(2 * d + 1), np.empty(3, np.int64))
    theta, buf, prev_theta, evec, crossing, counts = state
    rec = engine.Records(np.empty(n_rec), np.empty(n_rec), np.empty((n_rec, 1)),
                         np.empty((0, d)), np.empty(n_rec))
    for c in range(cells.shape[0]):
        i = cells[c]
        for k in range(d):
            theta[k] = theta0[c, k]
            buf[k] = theta0[c, k] if rule == engine.HEAVY_BALL else 0.0
            prev_theta[k] = theta0[c, k]
            evec[k] = 1.0 / np.sqrt(d)
        crossing[:] = -1.0
        counts[:] = 0
        method = engine.Method(rule, eta[i], momentum[i], loss_min[i])
        status, done = engine.gd_steps(p, method, eigen, state, rec, 0, steps, True, stride,
                                       divergence_norm, -1.0)
        kept = n_rec if status == _OK else engine.rows_kept(status, done, stride)
        # a critical state's record (ZERO_GRADIENT) counts for the loss; its step, and r
        # there, are undefined
        stepped = kept if status != _ZERO_GRADIENT else engine.rows_before(done, stride)
        out_int[i, 0] = status
        out_int[i, 1] = done
        _summarise(rule, eta[i], base[i], loss_min[i], stride, window, kept, stepped,
                   rec.loss, rec.gnorm, rec.sharp, out_float[i], out_int[i])


#: blocks of cells per thread: cells stop early at different steps, so several small blocks
#: per thread balance the load
BLOCKS_PER_THREAD = 4


def cell_blocks(n_cells, threaded_loss=False):
    """Blocks of cell positions, and the threads to run them on (``stabsim._threads``; one
    thread for a loss whose functions run threads of their own: ``Family.threaded``).

    Every cell is independent, so the result does not depend on the threads or the blocks.
    """
    threads = 1 if threaded_loss else kernel_threads(n_cells)
    return np.array_split(np.arange(n_cells), min(n_cells, threads * BLOCKS_PER_THREAD)), threads


def build_loss(name: str, params: dict):
    """The loss of a sweep's ``[loss]`` table.

    ``name`` is a built-in family (``make_loss``), ``"<family>.random"`` (calls
    ``<Family>.random``), or ``"package.module:factory"``: ``factory(**params)`` from an
    importable module, returning a :class:`~stabsim.losses.Loss` (how a user-defined family is
    swept; its kernels are cached beside its module like a built-in's).
    """
    if ":" in name:
        return _user_loss(name, params)
    if not name.endswith(_RANDOM_SUFFIX):
        try:
            return make_loss(name, **params)
        except ValueError as exc:  # parameters of the family's random constructor, perhaps
            cls = FAMILIES.get(name)
            if cls is None and "." in name:  # a module's factory, written with a dot
                module, _, attribute = name.rpartition(".")
                raise ValueError(f"{exc}; a loss of your own is named 'module:factory', "
                                 f"here perhaps name = {module + ':' + attribute!r}: "
                                 "factory(**params) returns a stabsim.losses.Loss") from None
            if cls is None or not hasattr(cls, "random"):
                raise
            takes = list(inspect.signature(cls.random).parameters)
            raise ValueError(f"{exc}; or name = {name + _RANDOM_SUFFIX!r}, which takes "
                             f"{takes}") from None
    family = name[: -len(_RANDOM_SUFFIX)]
    cls = FAMILIES.get(family)
    if cls is None or not hasattr(cls, "random"):
        random = sorted(f + _RANDOM_SUFFIX for f, c in FAMILIES.items() if hasattr(c, "random"))
        raise ValueError(f"unknown loss {name!r}; random families: {random}; a loss of your "
                         f"own is named 'module:factory', here perhaps "
                         f"name = {family + ':random'!r}") from None
    try:
        return cls.random(**params)
    except TypeError as exc:  # a missing or unknown keyword
        raise ValueError(f"loss {name!r}: {exc}") from None


def _user_loss(name: str, params: dict):
    module_name, _, attribute = name.partition(":")
    cannot = f"loss {name!r}: cannot import {attribute!r} from {module_name!r}"
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"{cannot} ({exc})") from None
    except Exception as exc:  # the module's own code failed: a syntax error, a raise at import
        raise ValueError(f"{cannot}: importing {module_name!r} raised "
                         f"{type(exc).__name__}: {exc}") from None
    try:
        loss = factory(**params)
    except TypeError as exc:  # a missing or unknown keyword
        raise ValueError(f"loss {name!r}: {exc}") from None
    if not isinstance(loss, Loss):
        raise ValueError(f"loss {name!r}: the factory returned {type(loss).__name__}, not a "
                         "stabsim.losses.Loss")
    return loss


def cell_starts(values, cells, dim):
    """θ0 of the cells ``cells``, shape (len(cells), dim): ``scale * theta0``, or ``scale``
    times a random unit vector drawn from the cell's ``seed``."""
    scale = np.asarray(values["scale"], dtype=np.float64)[np.asarray(cells, dtype=np.int64)]
    direction = values["theta0"]
    if isinstance(direction, str):
        starts = np.empty((scale.shape[0], dim))
        for row, i in enumerate(cells):
            z = np.random.default_rng(int(values["seed"][i])).standard_normal(dim)
            starts[row] = scale[row] * z / np.linalg.norm(z)
        return starts
    if len(direction) != dim:
        raise ValueError(f"theta0 has length {len(direction)}, but the loss has dimension {dim}")
    return scale[:, None] * np.asarray(direction, dtype=np.float64)[None, :]


def cell_losses(config, values: dict) -> list:
    """The distinct losses of the cells, each built once.

    Returns
    -------
    list of (Loss, list of int)
        One entry per distinct set of family parameters in ``values["loss"]`` (in the
        order of first use): the loss, and the positions of the cells that use it.
    """
    distinct = {}  # JSON of the loss parameters → (loss, its cells)
    keys = {}  # the same for the parameters' items, where hashable: much faster than JSON
    previous, key = None, None
    for i, family in enumerate(values["loss"]):
        if family is previous:  # the cells of a sweep over no loss parameter share one dict
            distinct[key][1].append(i)
            continue
        previous = family
        try:
            items = tuple(sorted(family.items()))
            key = keys.get(items)
            if key is None:
                key = keys[items] = json.dumps(family, sort_keys=True)
        except TypeError:  # a list or dict value
            key = json.dumps(family, sort_keys=True)
        if key not in distinct:
            distinct[key] = (build_loss(config.loss["name"], family), [])
        distinct[key][1].append(i)
    return list(distinct.values())


def gd_cells(config, values: dict) -> dict:
    """Statistics and classes of gradient-method cells.

    Parameters
    ----------
    config : SweepConfig
        With ``model = "gd"``.
    values : dict
        The cells' parameter values (``grid.cell_values``).

    Returns
    -------
    dict
        Name → array over the cells: ``class`` and the statistics of the module docstring.
    """
    n = values["eta"].shape[0]
    distinct = cell_losses(config, values)
    eta = np.ascontiguousarray(values["eta"], dtype=np.float64)
    momentum = np.ascontiguousarray(values["momentum"], dtype=np.float64)
    loss_min = np.zeros(n)
    for loss, cells in distinct:
        loss_min[cells] = resolve_loss_min(loss, config.method)
    base = np.zeros(n)
    if config.method in ("gd", "heavy_ball", "nesterov"):
        pairs, cell_pair = np.unique(np.stack([eta, momentum], axis=1), axis=0,
                                     return_inverse=True)
        base = np.array([2.0 / stability_threshold(e, config.method, m)
                         for e, m in pairs])[cell_pair.ravel()]
    out_float = np.empty((n, len(FLOAT_STATS)))
    out_int = np.empty((n, len(INT_STATS)), np.int64)
    for loss, cells in distinct:
        theta0 = cell_starts(values, cells, loss.dim)
        eigen = eigen_config(loss, "auto", 1, EIG_TOL, EIG_MAX_PRODUCTS)
        kernel = engine_for(gd_cells_kernel, loss.family)
        cells = np.array(cells, np.int64)

        def run(block, kernel=kernel, loss=loss, eigen=eigen, cells=cells, theta0=theta0):
            kernel(loss.params, eigen, cells[block], theta0[block], METHODS[config.method],
                   eta, momentum, base, loss_min, config.steps, config.stride,
                   config.divergence_norm, config.window, out_float, out_int)

        in_threads(run, *cell_blocks(cells.shape[0], loss.family.threaded))
        # the cells whose measurement stalled, run again with thick restarts
        stalled = np.flatnonzero(out_int[cells, INT_STATS.index("status")] == _NOT_CONVERGED)
        thick = thick_after_stall(eigen, _NOT_CONVERGED)
        if stalled.size and thick is not None:
            blocks, threads = cell_blocks(stalled.size, loss.family.threaded)
            in_threads(functools.partial(run, eigen=thick), [stalled[b] for b in blocks],
                       threads)
    out = {name: out_float[:, k] for k, name in enumerate(FLOAT_STATS)}
    out.update({name: out_int[:, k] for k, name in enumerate(INT_STATS)})
    out["regime"] = classify_statistics(out, out["status"], config.band)
    return out


def run_cells(config, values: dict, names, run_cell, ratio: str = "rel_sharpness") -> dict:
    """Every cell of a sweep through ``run_cell``, with its statistics, status and class.

    Parameters
    ----------
    config : SweepConfig
    values : dict
        The cells' parameter values (``grid.cell_values``).
    names : sequence of str
        The statistics a cell returns.
    run_cell : callable
        ``run_cell(loss, theta0, i)`` → (statistics dict, status code, steps run) of cell i.
    ratio : str
        The ratio r_t the class is read from (:func:`~stabsim.sweep.classify.
        classify_statistics`).

    Returns
    -------
    dict
        Name → array over the cells: ``regime``, ``status``, ``steps_run`` and ``names``.
    """
    groups = cell_losses(config, values)
    loss_of = {i: loss for loss, cells in groups for i in cells}
    stats, status, steps_run = fill_cells(
        values["eta"].shape[0], names, [i for _, cells in groups for i in cells],
        lambda i: run_cell(loss_of[i], cell_starts(values, [i], loss_of[i].dim)[0], i))
    return {"regime": classify_statistics(stats, status, config.band, ratio),
            "status": status, "steps_run": steps_run, **stats}


def fill_cells(shape, names, indices, run_cell):
    """The statistics ``names``, status and steps run of the cells ``indices`` of an array of
    ``shape`` (NaN, 0 where not run), from ``run_cell(index)`` → (statistics dict, status
    code, steps run).

    Raises
    ------
    KeyboardInterrupt
        When a cell comes back INTERRUPTED: its run (``run_adaptive``, ``run_sgd``) answered
        a Ctrl-C by returning the part done, which is not the cell's result. The sweep stops
        there and the cut-short cell is never stored.
    """
    stats = {name: np.full(shape, np.nan) for name in names}
    status = np.zeros(shape, np.int8)
    steps_run = np.zeros(shape, np.int64)
    for index in indices:
        cell, status[index], steps_run[index] = run_cell(index)
        if status[index] == _INTERRUPTED:
            raise KeyboardInterrupt
        for name, value in cell.items():
            stats[name][index] = value
    return stats, status, steps_run
