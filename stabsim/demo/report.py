"""The demo's one-page Markdown report: each prediction's measured error beside the claim,
with the rate the theory claims for it and, where an experiment ran several step sizes, the
order in η fitted to the measured errors."""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np


@dataclasses.dataclass(frozen=True)
class Finding:
    """One row of the report.

    Attributes
    ----------
    experiment : str
        Which experiment measured it.
    quantity : str
        What was measured.
    measured : str
        The measured value, formatted.
    claim : str
        What the theory says (with its source).
    holds : bool
        Whether the measurement agrees with the claim within the stated tolerance.
    rate : str
        The rate the theory claims for the error ("O(η)", "O(δ) = O(η^½)", "exact: round-off"),
        or "" for a qualitative claim (the report shows "—").
    order : float or None
        The order p of the error in η fitted by least squares to log(error) = p log(η) + c
        over the step sizes ``etas`` (see :func:`fitted_order`); None when the experiment ran
        one step size.
    etas : tuple of float
        The step sizes of that fit.
    """

    experiment: str
    quantity: str
    measured: str
    claim: str
    holds: bool
    rate: str = ""
    order: float | None = None
    etas: tuple[float, ...] = ()


def fitted_order(etas, errors) -> float:
    """The order p of ``errors`` in ``etas``: the least-squares slope of log(error) on log(η),
    error ≈ c ηᵖ.

    Raises
    ------
    ValueError
        If fewer than two step sizes are given, the lengths differ, or an error or step size
        is not finite and positive (no logarithm).
    """
    etas = np.asarray(etas, dtype=float)
    errors = np.asarray(errors, dtype=float)
    if etas.ndim != 1 or etas.shape != errors.shape or etas.size < 2:
        raise ValueError(f"etas and errors must be 1-D of the same length ≥ 2, got shapes "
                         f"{etas.shape} and {errors.shape}")
    if not (np.all(np.isfinite(etas)) and np.all(etas > 0) and np.all(np.isfinite(errors))
            and np.all(errors > 0)):
        raise ValueError(f"etas and errors must be finite and positive, got {etas} and {errors}")
    return float(np.polyfit(np.log(etas), np.log(errors), 1)[0])


def write_report(path: pathlib.Path, findings, figures, seconds: float, versions: dict) -> None:
    """Write ``report.md``: the table of findings, then the figures."""
    lines = [
        "# stabsim demo report",
        "",
        f"{len(findings)} checks, {sum(f.holds for f in findings)} agree with the theory; "
        f"run time {seconds:.1f} s. Versions: "
        + ", ".join(f"{name} {version}" for name, version in versions.items()) + ".",
        "",
        "Per prediction: the measured error, the rate the theory claims for it, and, where "
        "the experiment ran several step sizes η, the order in η fitted to the errors (least "
        "squares of log error on log η).",
        "",
        "| experiment | quantity | measured | claimed rate | fitted order in η | theory says "
        "| agrees |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [" | ".join(["", *(_cell(text) for text in (f.experiment, f.quantity, f.measured,
                                                         f.rate or "—", _order(f), f.claim)),
                          "yes" if f.holds else "**no**", ""]).strip() for f in findings]
    lines += ["", "## Figures", ""]
    lines += [f"![{name}]({name})" for name in figures]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _order(finding: Finding) -> str:
    """The fitted order with the step sizes it was fitted over, or "—"."""
    if finding.order is None:
        return "—"
    return f"{finding.order:.2f} (η = {', '.join(f'{eta:g}' for eta in finding.etas)})"


def _cell(text: str) -> str:
    """Escape the pipes of |x| notation so they do not split a Markdown table cell."""
    return text.replace("|", "\\|")
