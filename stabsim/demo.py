"""``stabsim demo``: exact GD into the edge of stability on the default loss.

The default loss is a second-order regression model (THEORY §5) with d = 100 parameters and
n = 10 residuals, drawn with seed 2 and residual scale 3, started at θ = 0 with the step size
η = 2/(1.5 S(θ₀)):
GD's sharpness rises from 2/(1.5η) to the threshold 2/η within a few steps, hovers around it
while the loss falls non-monotonically, and the run settles on a minimiser whose sharpness
is just below 2/η.
"""

from __future__ import annotations

import pathlib
import time

import numpy as np

from .losses import QuadraticRegression
from .maps import run_gd

DEFAULT_MODEL = {"d": 100, "n": 10, "seed": 2, "z_scale": 3.0}
#: 2/η as a multiple of the initial sharpness
THRESHOLD_OVER_INITIAL_SHARPNESS = 1.5


def default_experiment(steps: int = 600):
    """Run the default experiment; return ``(loss, result)``."""
    loss = QuadraticRegression.random(**DEFAULT_MODEL)
    theta0 = np.zeros(loss.dim)
    initial_sharpness = np.linalg.eigvalsh(loss.hessian(theta0))[-1]
    eta = 2.0 / (THRESHOLD_OVER_INITIAL_SHARPNESS * initial_sharpness)
    return loss, run_gd(loss, theta0, eta, steps, progress=False)


def summarise(result) -> dict:
    """Numbers the demo prints: sharpness in units of 2/η before, at and after the EoS."""
    scaled = result.sharpness[:, 0] / result.threshold
    crossing = result.crossing_step
    summary = {
        "eta": result.eta,
        "threshold 2/eta": result.threshold,
        "initial sharpness * eta/2": float(scaled[0]),
        "first step with S >= 2/eta": crossing,
        "final sharpness * eta/2": float(scaled[-1]),
        "final loss": float(result.loss[-1]),
        "status": result.status.name,
    }
    if crossing is not None:
        after = scaled[crossing:crossing + 100]
        summary["max sharpness * eta/2 (100 steps after crossing)"] = float(after.max())
        summary["loss increases after crossing"] = int(np.sum(np.diff(result.loss[crossing:]) > 0))
    return summary


def run(out_dir: str | pathlib.Path, steps: int = 600) -> dict:
    """Run the demo, write ``gd_eos.png`` and ``gd_eos.nc`` into ``out_dir``, return the summary."""
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    _, result = default_experiment(steps)
    from .plot import plot_loss_and_sharpness

    fig = plot_loss_and_sharpness(result)
    fig.savefig(out / "gd_eos.png", dpi=120, bbox_inches="tight")
    result.to_xarray().to_netcdf(out / "gd_eos.nc", engine="scipy")
    summary = summarise(result)
    summary["seconds"] = round(time.perf_counter() - started, 2)
    return summary


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo", help="run exact GD into the edge of stability and write a figure and data",
        description=__doc__)
    parser.add_argument("--out", default="stabsim-demo",
                        help="output folder (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=600, help="GD steps (default: %(default)s)")
    parser.set_defaults(func=_main)


def _main(args) -> int:
    if args.steps < 1:
        raise ValueError(f"--steps must be >= 1, got {args.steps}")
    summary = run(args.out, steps=args.steps)
    print(f"stabsim demo: wrote {args.out}/gd_eos.png and {args.out}/gd_eos.nc")
    for key, value in summary.items():
        print(f"  {key:52s} {value:.6g}" if isinstance(value, float) else f"  {key:52s} {value}")
    return 0
