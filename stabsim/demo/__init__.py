"""``stabsim demo``: the theory's headline results from one command.

Runs the experiments of :mod:`stabsim.demo.experiments` (the canonical edge of stability on a
small tanh network: progressive sharpening, then the sharpness at 2/η while the loss falls,
beside gradient flow and the constrained trajectory θ†; exact GD into the edge of stability
on a regression model; GD against the constrained trajectory and the central flow; the
four-phase map and its exact realisation; the momentum thresholds; normalised GD against its
manifold flow; a phase diagram) and writes into one folder the figures (PNG), the data
(netCDF) and ``report.md``, whose table puts each prediction's measured error beside what
the theory claims.
"""

from __future__ import annotations

import importlib.metadata
import logging
import pathlib
import time

from .experiments import EXPERIMENTS
from .report import write_report

log = logging.getLogger(__name__)

#: the experiments of ``stabsim demo --quick``: GD into the edge of stability, and the
#: four-phase map with its exact realisation by GD (a few seconds once compiled)
QUICK = ("GD into the edge of stability", "reduced four-phase map",
         "exact realisation of the map")

#: the parser's description: plain text (the module docstring is reStructuredText)
DESCRIPTION = (
    "Run the theory's headline experiments (exact GD into the edge of stability; GD against "
    "the constrained trajectory and the central flow; the four-phase map and its exact "
    "realisation; the momentum thresholds; normalised GD against its manifold flow; a phase "
    "diagram) and write into one folder the figures (PNG), the data (netCDF) and report.md, "
    "whose table puts each prediction's measured error beside what the theory claims."
)


def run(out_dir, *, experiments=EXPERIMENTS):
    """Run ``experiments`` (``(title, function)`` pairs, by default every experiment); write
    figures, data and ``report.md``; return the findings. Progress is logged (logger
    ``stabsim.demo``) one line per experiment."""
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    findings, figures = [], []
    for number, (title, experiment) in enumerate(experiments, start=1):
        log.debug("[%d/%d] %s ...", number, len(experiments), title)
        tic = time.perf_counter()
        new_findings, new_figures = experiment(out)
        findings += new_findings
        figures += new_figures
        agree = sum(f.holds for f in new_findings)
        checks = f"{agree}/{len(new_findings)} agree" if new_findings else "figure only"
        log.info("[%d/%d] %s: %.1f s, %s", number, len(experiments), title,
                 time.perf_counter() - tic, checks)
    seconds = time.perf_counter() - started
    versions = {name: importlib.metadata.version(name)
                for name in ("stabsim", "numpy", "scipy", "numba")}
    write_report(out / "report.md", findings, figures, seconds, versions)
    return findings


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo", help="run the headline experiments; write figures, data and a report",
        description=DESCRIPTION)
    parser.add_argument("--out", default="stabsim-demo",
                        help="output folder (default: %(default)s)")
    parser.add_argument("--quick", action="store_true",
                        help="run only GD into the edge of stability and the four-phase map "
                             f"({len(QUICK)} of the {len(EXPERIMENTS)} experiments)")
    parser.set_defaults(func=_main)


def _main(args) -> int:
    if args.quick:
        findings = run(args.out, experiments=[e for e in EXPERIMENTS if e[0] in QUICK])
    else:
        findings = run(args.out)
    log.info("stabsim demo: %d/%d checks agree with the theory; report: %s",
             sum(f.holds for f in findings), len(findings), pathlib.Path(args.out) / "report.md")
    for finding in findings:
        # a check that disagrees is a warning: shown even with --quiet
        log.log(logging.INFO if finding.holds else logging.WARNING, "  %s %s: %s = %s",
                "ok " if finding.holds else "NO ", finding.experiment, finding.quantity,
                finding.measured)
    return 0 if all(f.holds for f in findings) else 1  # a check that disagrees is a failure
