"""The one result protocol every stabsim function returns through.

Every result (exact GD, the reduced map and its ensembles, the projection, θ†, every flow,
the comparisons, the sweeps) is a :class:`Result`:

- ``status`` (:class:`~stabsim.Status`), ``message`` (what happened and, for a failure,
  the knob to turn: the budget that actually ran out is named), ``success``;
- ``counters``: the work done, a ``dict`` of plain numbers (``steps``, ``gradients``,
  ``hvps``, ``rhs_evals``, ...; each result documents its keys);
- ``parameters``: the call's parameters (plain scalars and strings) that produced it;
- ``to_xarray()``: a Dataset whose every variable has ``long_name`` and ``units`` and whose
  attributes carry the provenance (:func:`stabsim._export.finish`); a new one each call,
  sharing no array with the result;
- a ``repr`` of a few lines (status, sizes, headline numbers) and ``_repr_html_``.

The vocabulary is one name each, across the package:

============================  ==================================================================
``steps``                     the horizon, in GD steps (an ``int`` for maps, a ``float`` for
                              flows, whose time ``t`` counts steps: ``θ(t)`` follows ``θ_t``)
``theta0``                    the start (``x0, y0`` for the reduced map)
``stride``                    what to save: a record every ``stride`` steps, and the last one
                              (the reduced map saves every ``stride``-th state; its final
                              state is ``x_final``, ``y_final``)
``step``                      the time axis of every record (a coordinate of ``to_xarray``)
``counters``                  the work counters
``theta`` / ``trajectory``    the final state / the recorded states, shape (n_records, d)
``eigensolver``               ``"auto"``, ``"lanczos"``, ``"eigh"`` (dense)
``integrator``                a SciPy ``solve_ivp`` method (``"DOP853"``, ``"LSODA"``, ...)
``method``                    a gradient method only (``"gd"``, ``"heavy_ball"``, ...)
============================  ==================================================================

Statuses of parts (ensemble members, the solvers inside a comparison) combine by one rule,
:func:`combine_statuses`: OK if every part is OK, else the most severe by
:data:`SEVERITY`.
"""

from __future__ import annotations

import dataclasses
import html
import re
from collections.abc import Iterable

import numpy as np

from ._status import Status

#: most severe first: the status of a whole when its parts disagree
SEVERITY = (
    Status.INTERRUPTED,  # the whole result is partial
    Status.NONFINITE,
    Status.DIVERGED,
    Status.LEFT_DOMAIN,
    Status.UNDERFLOW,
    Status.EIGENGAP_CLOSED,
    Status.FLAT_SHARPNESS,
    Status.ZERO_GRADIENT,
    Status.NOT_CONVERGED,
    Status.MAX_STEPS,
    Status.UNDEFINED,
    Status.OK,
)
_RANK = {status: rank for rank, status in enumerate(SEVERITY)}


def combine_statuses(statuses: Iterable) -> Status:
    """The status of a whole made of parts: OK if all are OK (or there are none), else the
    most severe by :data:`SEVERITY`."""
    worst = Status.OK
    for status in statuses:
        status = Status(int(status))
        if _RANK[status] < _RANK[worst]:
            worst = status
    return worst


def combine_parts(parts: dict) -> tuple[Status, str | None, str | None]:
    """Status, knob and detail of a whole made of named parts (:class:`Result` objects, or
    bare statuses where no result exists).

    The status is :func:`combine_statuses` of the parts'; the knob is that of the first
    part with that status (the budget that ran out there); the detail lists
    ``"name: message"`` for every part that is not OK (None when all are), shortened to
    ``"name: detail"`` where the part's message begins with the words the whole's does (to
    ``"name"`` where it has no more words). Parts that failed with the same status and the
    same words are listed once, by :func:`_names` and their number:
    ``"limit_map[0-50] (51 parts): detail"``.
    """
    status = combine_statuses(_status_of(part) for part in parts.values())
    knob = next((part.knob for part in parts.values()
                 if isinstance(part, Result) and part.status is status), None)
    alike: dict[tuple, list[str]] = {}  # (status, words) → names, in order of appearance
    for name, part in parts.items():
        if _status_of(part) is not Status.OK:
            alike.setdefault((_status_of(part), _part_text(part, status, knob)), []).append(name)
    failed = [": ".join(filter(None, (_names(names), text)))
              for (_, text), names in alike.items()]
    return status, knob, "; ".join(failed) or None


#: the name of a part that is one of an indexed family: ``"limit_map[3]"``
_INDEXED = re.compile(r"(.+)\[(\d+)\]")


def _names(names: list[str]) -> str:
    """Names of parts, compactly: the indexed ones of a family (``"x[0]"``, ``"x[1]"``, ...)
    as one with the runs of consecutive indices as ranges (``"x[0-2, 5]"``), then how many
    parts there are, when more than one (``"x[0-2, 5], y (5 parts)"``)."""
    # (name, None) and (family, its indices), in order of first appearance
    listed: list[tuple[str, list[int] | None]] = []
    indices: dict[str, list[int]] = {}  # family → its indices
    for name in names:
        match = _INDEXED.fullmatch(name)
        if match is None:
            listed.append((name, None))
            continue
        family = match[1]
        if family not in indices:
            indices[family] = []
            listed.append((family, indices[family]))
        indices[family].append(int(match[2]))
    shown = ", ".join(name if numbers is None else f"{name}[{_ranges(numbers)}]"
                      for name, numbers in listed)
    return shown if len(names) == 1 else f"{shown} ({len(names)} parts)"


def _ranges(indices: list[int]) -> str:
    """Sorted integers as runs: ``[0, 1, 2, 5]`` → ``"0-2, 5"``."""
    runs: list[list[int]] = []
    for index in sorted(indices):
        if runs and index == runs[-1][1] + 1:
            runs[-1][1] = index
        else:
            runs.append([index, index])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def _part_text(part, status: Status, knob: str | None) -> str | None:
    """What a failed part adds to the whole's message: its detail where its message begins
    as the whole's does, nothing where it is that message word for word, else its message."""
    if isinstance(part, Result) and part.status.describe(part.knob) == status.describe(knob):
        return part.detail
    return part.message


def _status_of(part) -> Status:
    return part.status if isinstance(part, Result) else Status(int(part))


def status_counts(statuses) -> dict[str, int]:
    """``{name: count}`` of the statuses in an array of codes, for the statuses present."""
    codes, counts = np.unique(np.asarray(statuses, dtype=np.int64), return_counts=True)
    return {Status(int(c)).name: int(n) for c, n in zip(codes, counts, strict=True)}


def _short(value) -> str:
    """A headline value in a few characters."""
    if isinstance(value, float | np.floating):
        return f"{value:.4g}"
    if isinstance(value, np.ndarray):
        return f"array{value.shape}"
    return str(value)


@dataclasses.dataclass(repr=False)
class Result:
    """Base of every result: the protocol of the module docstring.

    A subclass is a dataclass whose fields hold its data; it passes ``status``,
    ``counters`` and ``parameters`` (and ``knob``, the name of the budget a MAX_STEPS or
    NOT_CONVERGED status ran out of) to this base, and implements :meth:`to_xarray` and
    :meth:`headline`.
    """

    status: Status
    counters: dict
    parameters: dict
    #: the parameter whose budget ran out (MAX_STEPS, NOT_CONVERGED), named in ``message``
    knob: str | None = dataclasses.field(default=None, kw_only=True)
    #: more detail for ``message`` (a solver's own message, the step of the failure)
    detail: str | None = dataclasses.field(default=None, kw_only=True)

    @property
    def message(self) -> str:
        """What the status means and what to do about it, naming the exhausted knob."""
        return self.status.explain(self.knob, self.detail)

    @property
    def success(self) -> bool:
        """True when the status is OK."""
        return self.status is Status.OK

    def headline(self) -> dict:
        """The few numbers the ``repr`` shows after the status (name → value)."""
        return {}

    def to_xarray(self):
        """The result as a new ``xarray.Dataset`` sharing no array with it (see
        :mod:`stabsim._export`)."""
        raise NotImplementedError

    def _export_attrs(self) -> dict:
        """Dataset attributes every export carries: status, message and the counters."""
        return {"status": self.status.name, "message": self.message,
                **{f"counter_{name}": value for name, value in self.counters.items()}}

    def __repr__(self) -> str:
        head = ", ".join(f"{k}={_short(v)}" for k, v in self.headline().items())
        lines = [f"{type(self).__name__}(status={self.status.name}"
                 + (f", {head})" if head else ")")]
        if not self.success:
            lines.append(f"  {self.message}")
        if self.counters:
            lines.append("  counters: " + ", ".join(f"{k}={_short(v)}"
                                                    for k, v in self.counters.items()))
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = [("status", self.status.name), *self.headline().items(),
                *((f"counters.{k}", v) for k, v in self.counters.items())]
        if not self.success:
            rows.insert(1, ("message", self.message))
        body = "".join(f"<tr><th style='text-align:left'>{html.escape(str(k))}</th>"
                       f"<td style='text-align:left'>{html.escape(_short(v))}</td></tr>"
                       for k, v in rows)
        return (f"<table><caption style='text-align:left'><b>{type(self).__name__}</b>"
                f"</caption>{body}</table>")
