"""The main job: ``stabsim demo`` writes figures, data and a report whose checks agree."""

import logging
import os

import pytest
import xarray as xr

import stabsim.demo
from stabsim.cli import main
from stabsim.demo.experiments import EXPERIMENTS, network_edge_of_stability


def test_demo_writes_report_figures_and_data(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    printed = capsys.readouterr().err  # the CLI logs to stderr
    report = (out / "report.md").read_text(encoding="utf-8")
    assert ("| experiment | quantity | measured | claimed rate | fitted order in η | theory says "
            "| agrees |") in report
    # every check of the default experiments agrees with the theory (each check's own
    # tolerance is stated in stabsim/demo/experiments.py)
    assert "**no**" not in report and " NO " not in printed
    figures = ("network_eos.png", "gd_eos.png", "constrained.png", "reduced_map.png",
               "manifold_flow.png", "phase_diagram.png")
    for name in figures:
        assert (out / name).stat().st_size > 10_000
        assert f"]({name})" in report
    data = xr.open_dataset(out / "gd_eos.nc")
    assert data.attrs["status"] == "OK" and data.sizes["step"] == 601
    # the headline network's θ†: from GD's first crossing of 2/η to the last step, 2000
    gd = xr.open_dataset(out / "network_eos.nc")
    dagger = xr.open_dataset(out / "network_dagger.nc")
    assert dagger.attrs["status"] == "OK"
    assert dagger.sizes["step"] == 2000 - gd.attrs["crossing_step"] + 1
    assert "| network θ† | RMS" in report and "| network θ† | cycle-mean excess loss" in report
    # and the central flow over the same steps (saved at every step)
    central = xr.open_dataset(out / "network_central_flow.nc")
    assert central.attrs["status"] == "OK"
    assert central.sizes["step"] == 2000 - gd.attrs["crossing_step"] + 1
    assert "| network central flow | cycle-mean excess loss over the central flow" in report


def test_cli_without_command_prints_help(capsys):
    assert main([]) == 2
    assert "demo" in capsys.readouterr().out


def test_network_checks_fail_when_gd_stops_before_the_edge_of_stability(tmp_path):
    """Each network check can fail: 200 steps end before the crossing at step ~500, so there
    is no sharpening phase of 300 steps, no EoS window, no whole cycle, no θ† and no central
    flow."""
    findings, _ = network_edge_of_stability(tmp_path, steps=200)
    assert len(findings) == 7 and not any(f.holds for f in findings)
    assert all("never reached" in f.measured for f in findings
               if f.experiment in ("network θ†", "network central flow"))
    assert not (tmp_path / "network_dagger.nc").exists()
    assert not (tmp_path / "network_central_flow.nc").exists()


@pytest.mark.parametrize(("ratio", "holds"), [(0.9, [False, False, False]),
                                              (1.0, [False, True, False])])
def test_gd_checks_fail_from_a_start_at_or_past_the_edge(tmp_path, monkeypatch, ratio, holds):
    """Each GD check can fail. From S(θ₀) = 2/(0.9η) the run crosses at step 0 and diverges
    (its loss rises to 1.75e22): all three fail; they had asked only for a crossing, one
    rise of the loss and the last step's S (one side of a period-2 oscillation), and passed
    it. From S(θ₀) = 2/η it starts at the edge, not below it, and its loss falls
    non-monotonically (4.32 to 4.6e-5) while S·η/2 still reaches 1.011 in its last 100
    steps."""
    import stabsim.demo.experiments as experiments

    monkeypatch.setattr(experiments, "THRESHOLD_OVER_INITIAL_SHARPNESS", ratio)
    findings, _ = experiments.gd_edge_of_stability(tmp_path)
    assert [f.holds for f in findings] == holds


def test_experiments_side_by_side_give_the_findings_of_one_process(tmp_path):
    # each experiment is deterministic and independent of the others: the same findings,
    # in the experiments' order, from one process and from two
    quick = [e for e in EXPERIMENTS if e[0] in stabsim.demo.QUICK]
    here = stabsim.demo.run(tmp_path / "here", experiments=quick, processes=1)
    apart = stabsim.demo.run(tmp_path / "apart", experiments=quick, processes=2)
    assert [(f.experiment, f.quantity, f.measured, bool(f.holds)) for f in apart] == \
        [(f.experiment, f.quantity, f.measured, bool(f.holds)) for f in here]
    assert (tmp_path / "apart" / "gd_eos.png").is_file()


def _logs_from_its_process(out):
    logging.getLogger("stabsim.demo").info("worker %d", os.getpid())
    logging.getLogger("stabsim.demo").info("compiling kernels, first run only…",
                                           extra={"once": True})
    return [], []


def test_the_workers_messages_come_through_this_process(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="stabsim")
    stabsim.demo.run(tmp_path, processes=2,
                     experiments=[("one", _logs_from_its_process),
                                  ("two", _logs_from_its_process)])
    messages = [r.getMessage() for r in caplog.records]
    workers = {m.split()[1] for m in messages if m.startswith("worker ")}
    assert len(workers) >= 1 and str(os.getpid()) not in workers
    # a message marked "once" is shown for the first worker only
    assert messages.count("compiling kernels, first run only…") == 1
    assert any(m.startswith("[1/2] one:") for m in messages)


@pytest.mark.parametrize("processes", [0, 1.5, "2"])
def test_processes_must_be_a_positive_integer(tmp_path, processes):
    with pytest.raises(ValueError, match="processes"):
        stabsim.demo.run(tmp_path, experiments=[], processes=processes)
