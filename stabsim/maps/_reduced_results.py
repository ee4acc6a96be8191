"""Result objects of the reduced (x, y) map."""

from __future__ import annotations

import dataclasses

import numpy as np

from .._export import finish, flag_attrs, integer_on_disk, missing_as_nan
from .._result import Result
from .._status import Status


@dataclasses.dataclass
class CycleStats:
    """Cycle summaries of a trajectory (or, with a leading trajectory axis, of an ensemble).

    A cycle boundary is a state t in phase I whose predecessor t − 1 was in phase IV
    (entry into phase I from IV); cycle k runs from boundary k to boundary k + 1.

    Attributes
    ----------
    n_boundaries : int or ndarray
        Boundaries crossed (the completed cycles are ``max(n_boundaries − 1, 0)``).
    boundary_step : ndarray of int
        Step of each boundary (−1 past the last one stored).
    boundary_H : ndarray
        ``H(x, y) = y² + (β/2)x² − α ln x²`` at each boundary (NaN past the last one).
    cycle_length : ndarray of int
        Steps in each completed cycle (0 past the last one).
    cycle_mean_x2 : ndarray
        Mean of x² over the states ``[t_k, t_{k+1})`` of each cycle (NaN past the last).
    cycle_y_max, cycle_y_min, cycle_max_abs_x : ndarray or None
        Extremes of y and of |x| over the states ``[t_k, t_{k+1})`` of each completed
        cycle (NaN past the last): the orbit's size cycle by cycle. None for an ensemble run
        without ``cycle_extremes=True``.
    y_max, y_min, max_abs_x : float or ndarray
        Extremes over every state of the run, the last included (the transient before the
        first boundary and the unfinished last cycle too).
    first_blowup : int or ndarray
        First step t with state t − 1 in phase II and state t in phase III — x² reaches δ²
        while y > 0 — or −1 if that never happens.
    """

    n_boundaries: np.ndarray
    boundary_step: np.ndarray
    boundary_H: np.ndarray
    cycle_length: np.ndarray
    cycle_mean_x2: np.ndarray
    cycle_y_max: np.ndarray
    cycle_y_min: np.ndarray
    cycle_max_abs_x: np.ndarray
    y_max: np.ndarray
    y_min: np.ndarray
    max_abs_x: np.ndarray
    first_blowup: np.ndarray

    @property
    def completed_cycles(self):
        """Completed cycles: boundaries − 1 (never negative)."""
        return np.maximum(np.asarray(self.n_boundaries) - 1, 0)


#: CF flags of the reduced map's phase codes 1–4 (phases I–IV of docs/theory.md §1)
PHASE_FLAGS = {"flag_values": np.array([1, 2, 3, 4], np.int8),
               "flag_meanings": "phase_i phase_ii phase_iii phase_iv"}


def _params_attrs(params: dict) -> dict:
    """Parameters as netCDF-safe attributes; one that is not set (None) is left out."""
    return {k: v for k, v in params.items() if v is not None}


@dataclasses.dataclass(repr=False)
class ReducedResult(Result):
    """One trajectory of the reduced map (the protocol of :class:`stabsim._result.Result`).

    Attributes
    ----------
    step, x, y, phase : ndarray
        Saved states at steps ``0, stride, 2 stride, …`` up to the stop step; ``phase`` is
        1–4 for I–IV.
    parameters : dict
        ``x0, y0, eta, alpha, beta, steps, stride, cycles, max_cycles``.
    status : Status
        OK, LEFT_DOMAIN, NONFINITE, UNDERFLOW (its message names the step), or MAX_STEPS
        (``cycles`` boundaries not reached within ``steps``).
    counters : dict
        ``steps`` (steps run, = ``stop_step``) and ``boundaries`` (cycle boundaries crossed).
    stop_step : int
        The step of the final state (``steps`` unless the run stopped early).
    x_final, y_final : float
        The final state (the offending one for LEFT_DOMAIN / NONFINITE / UNDERFLOW).
    cycles : CycleStats
    """

    step: np.ndarray
    x: np.ndarray
    y: np.ndarray
    phase: np.ndarray
    stop_step: int
    x_final: float
    y_final: float
    cycles: CycleStats

    @property
    def delta2(self) -> float:
        """δ² = 2α/β."""
        return 2.0 * self.parameters["alpha"] / self.parameters["beta"]

    def headline(self) -> dict:
        return {"steps": self.stop_step, "x_final": self.x_final, "y_final": self.y_final,
                "boundaries": int(self.cycles.n_boundaries)}

    def to_xarray(self):
        """An ``xarray.Dataset`` with x, y, phase on dim ``step``, the final state
        ``x_final``, ``y_final`` (0-d), and the cycle summaries on dims ``boundary`` and
        ``cycle``; parameters and status as attributes."""
        import xarray as xr

        c = self.cycles
        nb = int(c.n_boundaries)
        nc = max(nb - 1, 0)
        attrs = dict(_params_attrs(self.parameters), **self._export_attrs(),
                     stop_step=self.stop_step,
                     y_max=float(c.y_max), y_min=float(c.y_min), max_abs_x=float(c.max_abs_x))
        if c.first_blowup >= 0:  # −1: never
            attrs["first_blowup"] = int(c.first_blowup)
        ds = xr.Dataset(
            {
                "x": ("step", self.x),
                "y": ("step", self.y),
                "phase": ("step", self.phase, PHASE_FLAGS),
                "x_final": ((), self.x_final),
                "y_final": ((), self.y_final),
                "boundary_step": ("boundary", c.boundary_step[:nb]),
                "boundary_H": ("boundary", c.boundary_H[:nb]),
                "cycle_length": ("cycle", c.cycle_length[:nc]),
                "cycle_mean_x2": ("cycle", c.cycle_mean_x2[:nc]),
                "cycle_y_max": ("cycle", c.cycle_y_max[:nc]),
                "cycle_y_min": ("cycle", c.cycle_y_min[:nc]),
                "cycle_max_abs_x": ("cycle", c.cycle_max_abs_x[:nc]),
            },
            coords={"step": self.step},
            attrs=attrs,
        )
        return finish(ds, self.parameters)


@dataclasses.dataclass(repr=False)
class ReducedEnsembleResult(Result):
    """An ensemble of reduced-map trajectories (flattened to one trajectory axis).

    Its ``status`` combines the trajectories' by :func:`stabsim._result.combine_statuses`
    (OK if every one is OK, else the most severe); ``counters`` holds ``trajectories``,
    ``steps`` (trajectory-steps run, summed) and, per status present, the number of
    trajectories that ended with it (``counters["OK"]``, ``counters["LEFT_DOMAIN"]``, ...).

    Attributes
    ----------
    shape : tuple
        The broadcast shape of the inputs; ``reshape(a)`` restores it.
    x0, y0, eta, alpha, beta : ndarray, shape (n,)
        Each trajectory's start and parameters.
    x_final, y_final : ndarray, shape (n,)
        Where each trajectory stopped.
    status_codes : ndarray of int8, shape (n,)
        A :class:`Status` code per trajectory.
    stop_step : ndarray of int64, shape (n,)
    step, x, y : ndarray or None
        With ``stride``: saved steps, and states of shape (len(step), n), NaN from a failed
        trajectory's stop step on.
    cycles : CycleStats or None
        With ``stats=True``; per-boundary arrays have shape (n, width).
    parameters : dict
        ``steps, stride, cycles, max_cycles, cycle_extremes``.
    """

    shape: tuple
    x0: np.ndarray
    y0: np.ndarray
    eta: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
    x_final: np.ndarray
    y_final: np.ndarray
    status_codes: np.ndarray
    stop_step: np.ndarray
    step: np.ndarray | None
    x: np.ndarray | None
    y: np.ndarray | None
    cycles: CycleStats | None

    def headline(self) -> dict:
        return {"trajectories": self.x0.size, "steps": self.parameters["steps"]}

    def reshape(self, a: np.ndarray) -> np.ndarray:
        """A per-trajectory array (trajectory axis first) in the inputs' broadcast shape."""
        return np.asarray(a).reshape(self.shape + np.shape(a)[1:])

    def to_xarray(self):
        """An ``xarray.Dataset`` on dim ``trajectory`` (and ``step``, ``boundary``,
        ``cycle`` where saved)."""
        import xarray as xr

        tr = "trajectory"
        data = {
            "x0": (tr, self.x0), "y0": (tr, self.y0), "eta": (tr, self.eta),
            "alpha": (tr, self.alpha), "beta": (tr, self.beta),
            "x_final": (tr, self.x_final), "y_final": (tr, self.y_final),
            "status": (tr, self.status_codes, flag_attrs(Status)),
            "stop_step": (tr, self.stop_step),
        }
        coords = {tr: np.arange(self.x0.size)}
        if self.step is not None:
            data["x"] = (("step", tr), self.x)
            data["y"] = (("step", tr), self.y)
            coords["step"] = self.step
        c = self.cycles
        if c is not None:
            # rows are padded past the last boundary (step −1) and the last completed
            # cycle (length 0), and first_blowup is −1 when it never happened: NaN here
            width = np.arange(c.boundary_step.shape[1])
            past_boundary = width >= np.asarray(c.n_boundaries)[:, None]
            past_cycle = width[: c.cycle_length.shape[1]] >= c.completed_cycles[:, None]
            data.update({
                "n_boundaries": (tr, c.n_boundaries),
                "y_max": (tr, c.y_max), "y_min": (tr, c.y_min),
                "max_abs_x": (tr, c.max_abs_x),
                "first_blowup": (tr, missing_as_nan(c.first_blowup, c.first_blowup < 0)),
                "boundary_step": ((tr, "boundary"),
                                  missing_as_nan(c.boundary_step, past_boundary)),
                "boundary_H": ((tr, "boundary"), c.boundary_H),
                "cycle_length": ((tr, "cycle"), missing_as_nan(c.cycle_length, past_cycle)),
                "cycle_mean_x2": ((tr, "cycle"), c.cycle_mean_x2),
            })
            if c.cycle_y_max is not None:
                data.update({name: ((tr, "cycle"), getattr(c, name)) for name in
                             ("cycle_y_max", "cycle_y_min", "cycle_max_abs_x")})
        attrs = dict(_params_attrs(self.parameters), **self._export_attrs())
        ds = xr.Dataset(data, coords=coords, attrs=attrs)
        for name in ("first_blowup", "boundary_step", "cycle_length"):
            if name in ds:
                integer_on_disk(ds[name])
        return finish(ds, self.parameters)
