"""The demo report: per prediction, the measured error, the claimed rate and the fitted order,
taken from the runs."""

import math
import re

import numpy as np
import pytest

from stabsim.demo.experiments import reduced_map
from stabsim.demo.report import Finding, fitted_order, write_report
from stabsim.maps import run_reduced


def test_fitted_order_recovers_a_power_law():
    etas = np.array([0.01, 0.005, 0.0025])
    for order in (0.5, 1.0, 2.0):
        # error = 3 ηᵖ exactly: the log-log slope is p up to round-off in the logarithms
        assert fitted_order(etas, 3.0 * etas**order) == pytest.approx(order, abs=1e-12)


@pytest.mark.parametrize("etas, errors", [([0.01], [1.0]), ([0.01, 0.005], [1.0]),
                                          ([0.01, 0.005], [1.0, 0.0]),
                                          ([0.01, -0.005], [1.0, 0.5]),
                                          ([0.01, 0.005], [1.0, np.nan])])
def test_fitted_order_rejects_what_has_no_order(etas, errors):
    with pytest.raises(ValueError, match="etas and errors"):
        fitted_order(etas, errors)


def _rows(report):
    """The report's table rows, split into cells (``\\|`` is a pipe inside a cell)."""
    rows = [line for line in report.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in re.split(r"(?<!\\)\|", row)[1:-1]] for row in rows]


def test_report_shows_rate_and_order_of_each_prediction(tmp_path):
    findings, figures = reduced_map(tmp_path)
    write_report(tmp_path / "report.md", findings, figures, 1.0, {"stabsim": "test"})
    header, *rows = _rows((tmp_path / "report.md").read_text(encoding="utf-8"))
    assert header == ["experiment", "quantity", "measured", "claimed rate",
                      "fitted order in η", "theory says", "agrees"]
    assert all(len(row) == len(header) for row in rows) and len(rows) == len(findings)
    identity, drift = rows
    assert identity[3] == "exact: round-off" and identity[4] == "—"
    # the drift of H per cycle, recomputed from the map itself: the order over two step sizes
    # is log(d₁/d₂)/log(η₁/η₂), and the report must show that number (from the run)
    drifts = {}
    for eta in (0.004, 0.002):
        cycles = run_reduced(1e-2, 0.0, eta, 1.0, 1.0, 400_000, cycles=6).cycles
        drifts[eta] = np.mean(np.diff(cycles.boundary_H[: int(cycles.n_boundaries)]))
    order = math.log(drifts[0.004] / drifts[0.002]) / math.log(2.0)
    assert drift[3] == "O(η)"
    assert drift[4] == f"{order:.2f} (η = 0.004, 0.002)"
    assert drift[2].startswith(f"{drifts[0.004] / drifts[0.002]:.2f} ")
    assert drift[6] == ("yes" if abs(drifts[0.004] / drifts[0.002] - 2.0) <= 0.4 else "**no**")


def test_a_qualitative_claim_shows_no_rate(tmp_path):
    finding = Finding("GD at the EoS", "step where S first reaches 2/η", "212",
                      "progressive sharpening reaches 2/η", True)
    write_report(tmp_path / "report.md", [finding], [], 1.0, {"stabsim": "test"})
    (_, row) = _rows((tmp_path / "report.md").read_text(encoding="utf-8"))
    assert row[3] == "—" and row[4] == "—" and row[6] == "yes"
