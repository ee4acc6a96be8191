"""``stabsim demo``: the theory's headline results from one command.

Runs the experiments of :mod:`stabsim.demo.experiments` (the canonical edge of stability on a
small tanh network: progressive sharpening, then the sharpness at 2/η while the loss falls;
exact GD into the edge of stability on a regression model;
GD against the constrained trajectory and the central flow; the four-phase map and its exact
realisation; the momentum thresholds; normalised GD against its manifold flow; a phase
diagram) and writes into one folder the figures (PNG), the data (netCDF) and ``report.md``,
whose table puts each prediction's measured error beside what the theory claims.
"""

from __future__ import annotations

import importlib.metadata
import pathlib
import time

from .experiments import EXPERIMENTS
from .report import write_report


def run(out_dir, *, echo=print):
    """Run every experiment; write figures, data and ``report.md``; return the findings."""
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    findings, figures = [], []
    for number, (title, experiment) in enumerate(EXPERIMENTS, start=1):
        echo(f"[{number}/{len(EXPERIMENTS)}] {title} ...", end=" ", flush=True)
        tic = time.perf_counter()
        new_findings, new_figures = experiment(out)
        findings += new_findings
        figures += new_figures
        agree = sum(f.holds for f in new_findings)
        checks = f"{agree}/{len(new_findings)} agree" if new_findings else "figure only"
        echo(f"{time.perf_counter() - tic:.1f} s, {checks}")
    seconds = time.perf_counter() - started
    versions = {name: importlib.metadata.version(name)
                for name in ("stabsim", "numpy", "scipy", "numba")}
    write_report(out / "report.md", findings, figures, seconds, versions)
    return findings


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo", help="run the headline experiments; write figures, data and a report",
        description=__doc__)
    parser.add_argument("--out", default="stabsim-demo",
                        help="output folder (default: %(default)s)")
    parser.set_defaults(func=_main)


def _main(args) -> int:
    findings = run(args.out)
    print(f"stabsim demo: {sum(f.holds for f in findings)}/{len(findings)} checks agree with "
          f"the theory; report: {pathlib.Path(args.out) / 'report.md'}")
    for finding in findings:
        mark = "ok " if finding.holds else "NO "
        print(f"  {mark} {finding.experiment}: {finding.quantity} = {finding.measured}")
    return 0 if all(f.holds for f in findings) else 1  # a check that disagrees is a failure
