"""The result of a sweep: the protocol of :class:`stabsim._result.Result` around its
dataset."""

from __future__ import annotations

import dataclasses

import numpy as np

from .._result import Result, combine_statuses, status_counts


@dataclasses.dataclass(repr=False)
class SweepResult(Result):
    """What :func:`~stabsim.sweep.run_sweep` (or :func:`~stabsim.sweep.catapult.catapult_sweep`)
    computed.

    The status combines the cells' (variable ``status``) by
    :func:`stabsim._result.combine_statuses`: OK if every cell ran to its end, else the most
    severe (a cell that diverged or left the map's domain is a finding of the sweep, not a
    fault; the cell statuses say where). ``counters``: ``cells``, and the number of cells
    per status present (``counters["OK"]``, ``counters["DIVERGED"]``, ...).

    Attributes
    ----------
    dataset : xarray.Dataset
        One dimension per swept parameter; ``regime``, ``status`` and the cell statistics
        (the conventions of :mod:`stabsim._export`). ``to_xarray()`` returns a deep copy.
    model : str
        What was swept (``"reduced"``, ``"gd"``, ``"uv model"``).
    """

    dataset: object
    model: str

    @classmethod
    def of(cls, dataset, model: str, parameters: dict, knob: str | None) -> SweepResult:
        """The result of a sweep whose cells' statuses are ``dataset["status"]``; ``knob``
        is the option whose budget a MAX_STEPS or NOT_CONVERGED cell ran out of (None when
        no option sets it)."""
        codes = np.asarray(dataset["status"].values).ravel()
        counts = status_counts(codes)
        status = combine_statuses(np.unique(codes))
        return cls(status=status, counters={"cells": int(codes.size), **counts},
                   parameters=parameters, knob=knob,
                   detail=None if codes.size == counts.get("OK", 0) else f"cells: {counts}",
                   dataset=dataset, model=model)

    def headline(self) -> dict:
        return {"model": self.model, "shape": dict(self.dataset["regime"].sizes)}

    def to_xarray(self):
        """A deep copy of the sweep's ``xarray.Dataset`` (every variable with ``long_name``
        and ``units``, the config and versions as attributes): editing it leaves
        ``dataset`` as it was."""
        return self.dataset.copy(deep=True)
