"""``stabsim demo``: the theory's headline results from one command.

Runs the experiments of :mod:`stabsim.demo.experiments` (the canonical edge of stability on a
small tanh network: progressive sharpening, then the sharpness at 2/η while the loss falls,
beside gradient flow and the constrained trajectory θ†; exact GD into the edge of stability
on a regression model; GD against the constrained trajectory and the central flow; the
four-phase map and its exact realisation; the momentum thresholds; normalised GD against its
manifold flow; a phase diagram; the batch sharpness under SGD; the adaptive thresholds) and
writes into one folder the figures (PNG), the data
(netCDF) and ``report.md``, whose table puts each prediction's measured error beside what
the theory claims. The experiments run side by side, one process per core (:func:`run`).
"""

from __future__ import annotations

import importlib.metadata
import logging
import logging.handlers
import multiprocessing
import os
import pathlib
import time
from concurrent.futures import ProcessPoolExecutor, as_completed

from .._validate import nonnegative_int, writable_directory

log = logging.getLogger(__name__)

#: the experiments of ``stabsim demo --quick``: GD into the edge of stability, and the
#: four-phase map with its exact realisation by GD (a few seconds once compiled)
QUICK = ("GD into the edge of stability", "reduced four-phase map",
         "exact realisation of the map")

#: the parser's description: plain text (the module docstring is reStructuredText)
DESCRIPTION = (
    "Run the theory's headline experiments (the edge of stability on a network; exact GD "
    "into the edge of stability; GD against the constrained trajectory and the central flow; "
    "the four-phase map and its exact realisation; the momentum thresholds; normalised GD "
    "against its manifold flow; a phase diagram; the batch sharpness under SGD; the adaptive "
    "thresholds) and write into one folder the figures (PNG), the data (netCDF) and "
    "report.md, whose table puts each prediction's measured error beside what the theory "
    "claims."
)


def run(out_dir, *, experiments=None, processes=None):
    """Run ``experiments`` (``(title, function)`` pairs, by default every experiment); write
    figures, data and ``report.md``; return the findings. Progress is logged (logger
    ``stabsim.demo``) one line per experiment, as each finishes. ``out_dir`` that is a
    file, or where no file can be written, is a ``ValueError`` before any experiment.

    ``processes``: how many experiments run side by side, each in a process of its own
    (default: one per core, at most one per experiment; 1 runs them here, one after
    another). The experiments are independent and deterministic, so the findings do not
    depend on it; the processes share the kernels' disk cache, and their log messages come
    through this process's loggers. With more than one process each experiment function is
    sent to a worker by name: a function defined at the top level of a module. Measured
    cold and warm in the README.

    Ctrl-C raises ``KeyboardInterrupt`` once the running experiments stop: after the compiled
    chunk they are in or, on a first run, once the function they are compiling is done (a
    second Ctrl-C stops at once); experiments not yet started are dropped.
    """
    # the experiments (and with them the engines) are imported here, not with the module,
    # so that the command line's parser and ``stabsim --help`` load none of them
    from .experiments import EXPERIMENTS
    from .report import write_report

    experiments = list(EXPERIMENTS if experiments is None else experiments)
    processes = _process_count(processes, len(experiments))
    out = writable_directory("the output folder", out_dir)  # before any experiment
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    outcomes = {}
    for number, (new_findings, new_figures, seconds) in _outcomes(experiments, out, processes):
        outcomes[number] = new_findings, new_figures
        agree = sum(f.holds for f in new_findings)
        checks = f"{agree}/{len(new_findings)} agree" if new_findings else "figure only"
        log.info("[%d/%d] %s: %.1f s, %s", number, len(experiments),
                 experiments[number - 1][0], seconds, checks)
    findings = [f for number in sorted(outcomes) for f in outcomes[number][0]]
    figures = [f for number in sorted(outcomes) for f in outcomes[number][1]]
    seconds = time.perf_counter() - started
    versions = {name: importlib.metadata.version(name)
                for name in ("stabsim", "numpy", "scipy", "numba")}
    write_report(out / "report.md", findings, figures, seconds, versions)
    return findings


def _process_count(processes, n_experiments: int) -> int:
    if processes is None:
        return max(1, min(_cores(), n_experiments))
    return nonnegative_int("processes", processes, 1)


def _cores() -> int:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _timed(experiment, out):
    """``experiment(out)``'s findings and figures, and the seconds it took.

    A Ctrl-C stops the experiment (:func:`stabsim._interrupt.prompt_interrupt`): an engine's
    own answer, returning the part done with status INTERRUPTED, would let the experiment go
    on with a cut trajectory and the demo with the next one.
    """
    from .._interrupt import prompt_interrupt

    tic = time.perf_counter()
    with prompt_interrupt():
        new_findings, new_figures = experiment(out)
    return new_findings, new_figures, time.perf_counter() - tic


#: in a worker process: a Ctrl-C has stopped one of its experiments
_worker_stopped = False


def _timed_in_worker(experiment, out):
    """:func:`_timed` in a worker process, which starts no experiment once a Ctrl-C has
    stopped one: the pool may already have handed it the next (cancelling the experiments
    not started reaches only those it still holds)."""
    global _worker_stopped
    if _worker_stopped:
        raise KeyboardInterrupt
    try:
        return _timed(experiment, out)
    except KeyboardInterrupt:
        _worker_stopped = True
        raise


def _outcomes(experiments, out, processes):
    """(number, outcome of :func:`_timed`) for each experiment, as each finishes."""
    if processes == 1:
        for number, (title, experiment) in enumerate(experiments, start=1):
            log.debug("[%d/%d] %s ...", number, len(experiments), title)
            yield number, _timed(experiment, out)
        return
    from .._compile_log import notice_active

    context = multiprocessing.get_context("spawn")  # not fork: this process runs threads
    messages = context.Queue()
    relay = logging.handlers.QueueListener(messages, _Relay())
    relay.start()
    pool = ProcessPoolExecutor(processes, mp_context=context, initializer=_start_worker,
                               initargs=(messages, max(1, _cores() // processes),
                                         notice_active()))
    try:
        futures = {pool.submit(_timed_in_worker, experiment, out): number
                   for number, (_, experiment) in enumerate(experiments, start=1)}
        for future in as_completed(futures):
            yield futures[future], future.result()
    finally:  # after an error or Ctrl-C, experiments not yet started are dropped
        pool.shutdown(wait=True, cancel_futures=True)
        relay.stop()


def _start_worker(messages, threads, notice):
    """In a worker process: log records go to the parent (``messages``), Numba runs
    ``threads`` threads (the cores shared between the workers), and, if the parent shows
    the compile notice, so does the worker (the parent shows it once)."""
    import numba

    from .._compile_log import notice_from_now_on

    logger = logging.getLogger("stabsim")
    logger.handlers[:] = [logging.handlers.QueueHandler(messages)]
    logger.setLevel(logging.DEBUG)  # the parent's loggers decide what is shown
    logger.propagate = False
    numba.set_num_threads(threads)
    if notice:
        notice_from_now_on()


class _Relay(logging.Handler):
    """Hands the workers' records to this process's loggers (their levels and handlers); a
    record marked ``once`` is handed on the first time only."""

    def __init__(self):
        super().__init__()
        self._seen = set()

    def emit(self, record):
        if getattr(record, "once", False):
            if record.getMessage() in self._seen:
                return
            self._seen.add(record.getMessage())
        logger = logging.getLogger(record.name)
        if logger.isEnabledFor(record.levelno):
            logger.handle(record)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo", help="run the headline experiments; write figures, data and a report",
        description=DESCRIPTION)
    parser.add_argument("--out", default="stabsim-demo",
                        help="output folder (default: %(default)s)")
    parser.add_argument("--quick", action="store_true",
                        help="run only GD into the edge of stability, the four-phase map "
                             "and its exact realisation by GD "
                             f"({len(QUICK)} of the experiments)")
    parser.add_argument("--processes", type=int, default=None, metavar="N",
                        help="experiments side by side, each in a process of its own "
                             "(default: one per core, and 1 with --quick; 1 runs them one "
                             "after another here)")
    parser.set_defaults(func=_main)


def _main(args) -> int:
    from .experiments import EXPERIMENTS

    chosen = [e for e in EXPERIMENTS if e[0] in QUICK] if args.quick else EXPERIMENTS
    processes = args.processes
    if processes is None and args.quick:
        # once compiled the quick set takes 3.3–3.8 s here, and starting the workers cost
        # about a second more (4.4–4.8 s); compiling, 20.4–20.5 s against 16.2–18.9 s
        processes = 1
    findings = run(args.out, experiments=chosen, processes=processes)
    log.info("stabsim demo: %d/%d checks agree with the theory; report: %s",
             sum(f.holds for f in findings), len(findings), pathlib.Path(args.out) / "report.md")
    for finding in findings:
        # a check that disagrees is a warning: shown even with --quiet
        log.log(logging.INFO if finding.holds else logging.WARNING, "  %s %s: %s = %s",
                "ok " if finding.holds else "NO ", finding.experiment, finding.quantity,
                finding.measured)
    return 0 if all(f.holds for f in findings) else 1  # a check that disagrees is a failure
