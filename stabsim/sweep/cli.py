"""``stabsim sweep CONFIG.toml`` and ``stabsim plot RESULT``."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
from pathlib import Path

log = logging.getLogger(__name__)

#: sweeps estimated to take longer than this need confirmation (--yes when not interactive)
CONFIRM_SECONDS = 3600.0

EXAMPLE = """\
example config (sweep.toml):

  [sweep]
  model = "reduced"        # "reduced" (the (x, y) map); on a loss: "gd", "adaptive", "sgd"
  steps = 10000            # steps per cell
  # combine = "zip"        # lists zipped cell by cell instead of a grid
  # chunk_size = 20000     # cells per stored chunk (default: about a second of work)

  [params]                 # fixed parameters (reduced: eta alpha beta x0 y0)
  alpha = 1.0
  beta = 1.0
  y0 = 0.0

  [grid]                   # swept parameters: a list, or a range
  eta = {start = 0.01, stop = 0.5, num = 200}
  x0 = {start = 1e-4, stop = 1.0, num = 200, spacing = "log"}

  # model = "gd": method = "gd" | "heavy_ball" | "nesterov" | "normalised" | "sqrt" in
  # [sweep], and stride (odd: records on both sides of the period-2 orbit at the edge)
  # dividing steps; parameters eta momentum scale seed theta0 ("random" or a list); a loss:
  #   [loss]
  #   name = "scalar_network"   # any family of stabsim.losses.make_loss, or "regression.random"
  #                             # (with its seed: every chunk builds the loss again)
  #   [grid]
  #   eta = [0.1, 0.2, 0.4]
  #   loss.depth = [3, 4]       # family parameters are swept as loss.<name>
  #   [classify]
  #   band = 0.1                # edge of stability: late mean of S*eta/2 within 1 +- band
  #   window = 0.25             # late window: the last quarter of the run

  # model = "adaptive" (RMSProp, Adam, Scalar RMSProp; r = lambda_max(P^-1 H)/threshold):
  # method = "rmsprop" | "adam" | "scalar_rmsprop" in [sweep]; parameters eta beta2
  # (in [0, 1), default 0.99) beta1 (Adam only) eps scale seed theta0, and a [loss]:
  #   [grid]
  #   eta = {start = 0.001, stop = 0.1, num = 20, spacing = "log"}
  #   beta2 = [0.9, 0.99, 0.999]

  # model = "sgd" (mini-batch SGD on a finite-sum loss; r = batch sharpness*eta/2):
  # parameters eta batch_size (<= N unless replacement) batch_seed bs_batches scale seed
  # theta0; fixed only: replacement = true | false, batch_sharpness = "auto" | "exact" |
  # "sampled"; [classify] defaults band = 0.2, window = 0.5:
  #   [grid]
  #   eta = [0.1, 0.2, 0.4]
  #   batch_size = [2, 4, 8]

then:  stabsim sweep sweep.toml && stabsim plot sweep.nc
"""


def register(subparsers) -> None:
    """Add the ``sweep`` and ``plot`` subcommands."""
    sweep = subparsers.add_parser(
        "sweep", help="run a phase-diagram sweep from a TOML config",
        description="Run a phase-diagram sweep: classify every cell of a parameter grid and "
                    "write an xarray dataset (netCDF, or Zarr for a .zarr output). Completed "
                    "chunks are kept in a work directory, so an interrupted sweep resumes.",
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    sweep.add_argument("config", type=Path, help="the sweep's TOML file")
    sweep.add_argument("-o", "--output", type=Path,
                       help="result file (default: the config's name with .nc)")
    sweep.add_argument("--workdir", type=Path,
                       help="where completed chunks are kept (default: OUTPUT.chunks)")
    sweep.add_argument("--scheduler", metavar="ADDRESS",
                       help="run on the Dask cluster with this scheduler address")
    sweep.add_argument("--yes", action="store_true",
                       help="run even if the sweep is estimated to take over an hour")
    sweep.add_argument("--keep-chunks", action="store_true",
                       help="keep the chunk files after writing the result")
    sweep.add_argument("--no-progress", action="store_true", help="no progress bar")
    sweep.set_defaults(func=run_sweep_command)

    plot = subparsers.add_parser(
        "plot", help="draw the phase diagram of a sweep result",
        description="Draw the class of every cell of a sweep result over two swept "
                    "parameters (a strip for one).")
    plot.add_argument("result", type=Path, help="a sweep result (.nc or .zarr)")
    plot.add_argument("-o", "--output", type=Path,
                      help="figure file (default: the result's name with .png)")
    plot.add_argument("--x", help="parameter on the horizontal axis")
    plot.add_argument("--y", help="parameter on the vertical axis")
    plot.set_defaults(func=plot_command)


def run_sweep_command(args) -> int:
    from .config import SweepConfig
    from .runner import check_result_size, estimate_seconds, missing_cells, run_sweep
    from .store import check_output, check_workdir, default_workdir

    config = SweepConfig.from_toml(args.config)
    output = args.output or args.config.with_suffix(".nc")
    check_output(output)  # before the estimate and the sweep
    workdir = args.workdir or default_workdir(output)
    check_workdir(workdir)
    check_result_size(config)
    todo = missing_cells(config, workdir)
    seconds = estimate_seconds(config, todo) if todo else 0.0
    if seconds > CONFIRM_SECONDS and not args.yes:
        message = (f"this sweep ({todo} cells to compute) is estimated to take "
                   f"{seconds / 3600:.1f} hours on this machine")
        if not sys.stdin.isatty():
            raise ValueError(f"{message}; pass --yes to run it anyway")
        if input(f"{message}. Continue? [y/N] ").strip().lower() not in ("y", "yes"):
            return 1
    # a Ctrl-C (here or in the checks and estimate above) goes to stabsim.cli.main, which
    # says so and exits 130
    run_sweep(config, output, workdir=workdir, scheduler=args.scheduler,
              progress=False if args.no_progress else None, keep_chunks=args.keep_chunks)
    log.info("wrote %s", output)
    return 0


def plot_command(args) -> int:
    import xarray as xr
    from matplotlib.backend_bases import FigureCanvasBase

    from .. import _validate as check
    from .._export import read_netcdf
    from ..plot.sweep import plot_phase_diagram

    if not args.result.exists():
        raise ValueError(f"no such result: {args.result}")
    output = args.output or args.result.with_suffix(".png")
    if output.is_dir():  # before reading the result and drawing
        raise ValueError(f"the output {output} is a directory; name a file")
    formats = FigureCanvasBase.get_supported_filetypes()
    if output.suffix.lstrip(".").lower() not in formats:
        raise ValueError(f"the figure {output} must end in one of the formats Matplotlib "
                         f"writes: {', '.join('.' + f for f in sorted(formats))}")
    check.writable_in(f"the output {output}", check.existing_ancestor(output.parent))
    if args.result.suffix == ".zarr":
        if importlib.util.find_spec("zarr") is None:
            raise ValueError(f"reading {args.result} needs the zarr package "
                             f"(pip install zarr)")
        ds = xr.open_zarr(args.result)
    else:
        try:
            ds = read_netcdf(args.result)
        except (ValueError, OSError, TypeError) as exc:  # not a file xarray can read
            raise ValueError(f"cannot read {args.result} as a sweep result: "
                             f"{type(exc).__name__}: {exc}") from None
    cls = ds.get("regime")
    if cls is None or not {"flag_values", "flag_meanings"} <= set(cls.attrs):
        raise ValueError(f"{args.result} is not a stabsim sweep result: it needs a 'regime' "
                         f"variable with flag_values and flag_meanings attributes")
    for name in (args.x, args.y):
        if name is not None and name not in ds.coords:
            raise ValueError(f"{name!r} is not a swept parameter of {args.result}; "
                             f"it has {sorted(ds.coords)}")
    fig = plot_phase_diagram(ds, x=args.x, y=args.y)
    output.parent.mkdir(parents=True, exist_ok=True)  # allowed by the check above
    fig.savefig(output, dpi=150)
    log.info("wrote %s", output)
    return 0
