"""Cold first calls: `import stabsim` and one engine's first call, kernels compiled into an
empty cache.

Each case runs in a fresh interpreter whose Numba cache is an empty temporary folder, so
every kernel it reaches is compiled (and written to that cache). Two times are reported: the
CPU time of that process up to the call's return (`import stabsim` included; compilation is
single-threaded, and CPU time moves less with the machine's load), and in brackets the wall
time from starting the interpreter to the call's return. The interpreter's exit after it
(Python's finalisation of the objects Numba's compilation left) is in neither: it is
reported on its own, as the rest of the process's wall time. Last comes the CPU time of all
the case's processes to their exits: the interpreter's, and that of the second process the
engines that call a loss's derivatives from Python start to compile them
(:mod:`stabsim.losses._compile_ahead`; ``STABSIM_COMPILE_AHEAD=0`` turns it off). With
``--warm`` the same case is run a second time on the filled cache.

The cases are every public engine's first call: on the 1-6-6-6-1 network where the engine
runs on a loss of any family (on the scalar network on its manifold of minimisers for the
manifold flows), on no loss for the reduced map's, and the main ones on the regression model
and the minimalist loss too. ``run_gd valley`` is a family of the user's own: the module of
docs/byol.md, imported from a directory of its own, whose ``--warm`` time is that of a
second process that finds its kernels cached.

Run: ``python benchmarks/bench_first_calls.py [--runs N] [--warm] [case ...]`` (no case
names: all of them). Prints seconds per case; never fails on time.
"""

from __future__ import annotations

import os
import pathlib
import re
import resource
import subprocess
import sys
import tempfile
import time

#: the losses of the cases (each line is run after ``import numpy as np``); "map" is none,
#: for the reduced (x, y) map's engines
LOSSES = {
    "regression": "from stabsim.losses import QuadraticRegression\n"
                  "loss = QuadraticRegression.random(100, 10, seed=0)\n"
                  "theta = np.zeros(100)",
    "minimalist": "from stabsim.losses import Minimalist\n"
                  "loss = Minimalist()\n"
                  "theta = np.array([0.5, 0.1])",
    # the 1-6-6-6-1 tanh network on 32 Chebyshev samples of degree 4 (d = 103)
    "network": "from stabsim.losses import Network\n"
               "loss = Network((6, 6, 6), degree=4, n_samples=32)\n"
               "theta = loss.init(0)",
    "network_blocks": "from stabsim.losses import Network\n"
                      "loss = Network((6, 6, 6), degree=4, n_samples=32, chunks=2)\n"
                      "theta = loss.init(0)",
    # the scalar network of depth 10, at a point of its manifold of minimisers (all ones)
    "scalar_network": "from stabsim.losses import ScalarNetwork\n"
                      "loss = ScalarNetwork(10)\n"
                      "theta = np.ones(10)",
    "map": "",
    # a family of the user's own: the module of docs/byol.md (written out by `main`)
    "valley": "from my_losses import valley\n"
              "loss = valley()\n"
              "theta = np.array([0.1, 0.8])",
}

#: the tutorial whose module (the code block captioned ``my_losses.py``) is the user's family
TUTORIAL = pathlib.Path(__file__).resolve().parents[1] / "docs" / "byol.md"

#: the network of LOSSES["network"] as a sweep's [loss] table
_SWEPT_NETWORK = "{'name': 'network', 'hidden': [6, 6, 6], 'degree': 4, 'n_samples': 32}"

#: the first calls, short runs (compile time is what is measured): GD and SGD at
#: η = 1/S(θ₀), Adam and RMSProp at η = 0.01; the flows below 2/η (η = 1.8/S(θ₀)); `compare`
#: from above 2/η (η = 2.2/S(θ₀)) so that GD crosses at once and θ† runs
CALLS = {
    "run_gd": "from stabsim.maps import run_gd\nrun_gd(loss, theta, 1 / s0, 10)",
    "heavy_ball": "from stabsim.maps import run_gd\n"
                  "run_gd(loss, theta, 1 / s0, 10, method='heavy_ball', momentum=0.5)",
    "nesterov": "from stabsim.maps import run_gd\n"
                "run_gd(loss, theta, 1 / s0, 10, method='nesterov', momentum=0.5)",
    "normalised": "from stabsim.maps import run_gd\n"
                  "run_gd(loss, theta, 0.01, 10, method='normalised')",
    "sqrt": "from stabsim.maps import run_gd\n"
            "run_gd(loss, theta, 0.01, 10, method='sqrt', loss_min=0.0)",
    "run_gd_top2": "from stabsim.maps import run_gd\nrun_gd(loss, theta, 1 / s0, 10, top_k=2)",
    "step": "from stabsim.maps import step\nstep(loss, theta, 1 / s0)",
    "adam": "from stabsim.maps import run_adaptive\n"
            "run_adaptive(loss, theta, 0.01, 10, method='adam')",
    "rmsprop": "from stabsim.maps import run_adaptive\n"
               "run_adaptive(loss, theta, 0.01, 10, method='rmsprop')",
    "scalar_rmsprop": "from stabsim.maps import run_adaptive\n"
                      "run_adaptive(loss, theta, 0.01, 10, method='scalar_rmsprop')",
    "sgd": "from stabsim.maps import run_sgd\n"
           "run_sgd(loss, theta, 1 / s0, 10, batch_size=loss.n_examples // 2)",
    "batch_sharpness": "from stabsim.maps import batch_sharpness\n"
                       "batch_sharpness(loss, theta, loss.n_examples // 2, batches=8)",
    "sharpness": "from stabsim import sharpness\nsharpness(loss, theta)",
    "top_eigenpairs": "from stabsim import top_eigenpairs\ntop_eigenpairs(loss, theta, 2)",
    "eos_constants": "from stabsim.spectral import eos_constants\neos_constants(loss, theta)",
    "gradient_flow": "from stabsim.flows import gradient_flow\n"
                     "gradient_flow(loss, theta, 1.8 / s0, 2)",
    "modified_flow": "from stabsim.flows import modified_flow\n"
                     "modified_flow(loss, theta, 1.8 / s0, 2)",
    "central_flow": "from stabsim.flows import central_flow\n"
                    "central_flow(loss, theta, 1.8 / s0, 2)",
    "stable_geometry": "from stabsim.maps import stable_geometry\n"
                       "stable_geometry(loss, theta)",
    "proj_M": "from stabsim.maps import proj_M\nproj_M(loss, theta, 1.8 / s0)",
    "constrained": "from stabsim.maps import constrained_trajectory\n"
                   "constrained_trajectory(loss, theta, 1.8 / s0, 4)",
    # GD from below 2/η, long enough to cross it, and θ* near the crossing
    "reference_point": "from stabsim.maps import reference_point, run_gd\n"
                       "reference_point(loss, run_gd(loss, theta, 1.5 / s0, 300, "
                       "record_trajectory=True))",
    "compare": "from stabsim import compare\n"
               "compare(loss, theta, 2.2 / s0, 4, warn=False)",
    # the RMSProp flows from ν = 10⁻⁵, held at their edge from t = 0
    "rmsprop_flow": "from stabsim.flows import rmsprop_flow\n"
                    "rmsprop_flow(loss, theta, np.full(loss.dim, 1e-5), 0.005, 0.99, 5.0)",
    "scalar_rmsprop_flow": "from stabsim.flows import scalar_rmsprop_flow\n"
                           "scalar_rmsprop_flow(loss, theta, 1e-5, 0.005, 0.99, 5.0)",
    # sweeps over two step sizes, 10 steps each, on the network of LOSSES["network"],
    # which the sweep builds from its table
    "run_sweep": "from stabsim.sweep import SweepConfig, run_sweep\n"
                 "run_sweep(SweepConfig(model='gd', grid={'eta': [0.5 / s0, 1 / s0]}, "
                 f"steps=10, loss={_SWEPT_NETWORK}), progress=False)",
    "sweep_adaptive": "from stabsim.sweep import SweepConfig, run_sweep\n"
                      "run_sweep(SweepConfig(model='adaptive', grid={'eta': [0.005, 0.01]}, "
                      f"steps=10, loss={_SWEPT_NETWORK}), progress=False)",
    "sweep_sgd": "from stabsim.sweep import SweepConfig, run_sweep\n"
                 "run_sweep(SweepConfig(model='sgd', grid={'eta': [0.5 / s0, 1 / s0]}, "
                 f"params={{'batch_size': 16}}, steps=10, loss={_SWEPT_NETWORK}), "
                 "progress=False)",
    # on the manifold of minimisers: normalised GD's flow along it, the gradient flow's
    # limit, and normalised GD beside its flow (200 steps at η = 0.01)
    "manifold_flow": "from stabsim.flows import manifold_flow\n"
                     "manifold_flow(loss, theta, 0.01, 20)",
    "limit_map": "from stabsim.flows import limit_map\nlimit_map(loss, 0.8 * theta)",
    "tangent_space": "from stabsim.flows import tangent_space\ntangent_space(loss, theta)",
    "compare_manifold_flow": "from stabsim import compare_manifold_flow\n"
                             "compare_manifold_flow(loss, theta, 0.01, 200)",
    # the reduced map: one trajectory, 1,000 of them (final states, cycle statistics), its
    # ODE, and a sweep of two step sizes
    "run_reduced": "from stabsim.maps import run_reduced\n"
                   "run_reduced(1e-3, 0.0, 0.01, 1.0, 1.0, 100)",
    "ensemble": "from stabsim.maps import run_reduced_ensemble\n"
                "run_reduced_ensemble(np.full(1000, 1e-3), 0.0, 0.01, 1.0, 1.0, 100)",
    "ensemble_stats": "from stabsim.maps import run_reduced_ensemble\n"
                      "run_reduced_ensemble(np.full(1000, 1e-3), 0.0, 0.01, 1.0, 1.0, 100, "
                      "stats=True)",
    "reduced_ode": "from stabsim.flows import solve_reduced_ode\n"
                   "solve_reduced_ode(1e-3, 0.0, 0.01, 1.0, 1.0, 100)",
    # the heavy-ball threshold found by bisection on GD runs on S x²/2
    "empirical_threshold": "from stabsim.maps import empirical_threshold\n"
                           "empirical_threshold('heavy_ball', 0.5)",
    "sweep_reduced": "from stabsim.sweep import SweepConfig, run_sweep\n"
                     "run_sweep(SweepConfig(model='reduced', grid={'eta': [0.01, 0.02]}, "
                     "steps=100), progress=False)",
}

#: the calls run on each loss: every public engine once, on the network where it runs on
#: a loss of any family, and the main ones on the regression model and the minimalist loss
_CALLS_OF = {
    "regression": ["run_gd", "adam", "sgd", "central_flow", "constrained", "compare"],
    "minimalist": ["run_gd"],
    "network": ["run_gd", "heavy_ball", "nesterov", "normalised", "sqrt", "run_gd_top2",
                "step", "adam", "rmsprop", "scalar_rmsprop", "sgd", "batch_sharpness",
                "sharpness", "top_eigenpairs", "eos_constants", "gradient_flow",
                "modified_flow", "central_flow", "stable_geometry", "proj_M", "constrained",
                "reference_point", "compare", "rmsprop_flow", "scalar_rmsprop_flow",
                "run_sweep", "sweep_adaptive", "sweep_sgd"],
    "network_blocks": ["run_gd"],
    "scalar_network": ["manifold_flow", "limit_map", "tangent_space", "compare_manifold_flow"],
    "map": ["run_reduced", "ensemble", "ensemble_stats", "reduced_ode", "empirical_threshold",
            "sweep_reduced"],
    "valley": ["run_gd"],
}
CASES = {f"{call} {loss}": (loss, call) for loss, calls in _CALLS_OF.items() for call in calls}


def write_tutorial_module(directory: str) -> None:
    """Write the tutorial's ``my_losses.py`` into ``directory`` and put that directory on
    this process's path and its children's."""
    block = re.search(r"^:caption: my_losses.py\n\n(.*?)^```$", TUTORIAL.read_text(),
                      re.S | re.M)
    pathlib.Path(directory, "my_losses.py").write_text(block.group(1), encoding="utf-8")
    sys.path.insert(0, directory)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [directory, os.environ.get("PYTHONPATH")]))


def sharpness_at_start(loss: str) -> float:
    """S(θ₀) of a case's loss, by ``eigvalsh`` of its Hessian in this process: the child
    gets the number, so that its time is the call's alone."""
    import numpy as np

    if not LOSSES[loss]:
        return float("nan")
    scope = {"np": np}
    exec(LOSSES[loss], scope)
    return float(np.linalg.eigvalsh(scope["loss"].hessian(scope["theta"]))[-1])


def script(loss: str, call: str, s0: float) -> str:
    """The child's program: the loss, the call, and then its own CPU time and the clock."""
    return ("import time\nimport numpy as np\nimport stabsim  # noqa: F401\n"
            f"{LOSSES[loss]}\ns0 = float('{s0!r}')\n{CALLS[call]}\n"
            "print(time.process_time(), time.time(), flush=True)\n")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(program: str, cache: str) -> tuple[float, float, float, float]:
    """One child process running ``program`` with Numba cache ``cache``: its CPU seconds up
    to the call's return, the wall seconds from its start to then, those of its exit, and
    the CPU seconds of every process it ran, to their exits (the child's own included)."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache)
    before = _children_cpu()
    start = time.time()  # the child's clock is the same: wall time of this machine
    out = subprocess.run([sys.executable, "-c", program], check=True, env=env,
                         capture_output=True, text=True).stdout
    end = time.time()
    cpu, returned = (float(x) for x in out.split()[-2:])
    return cpu, returned - start, end - returned, _children_cpu() - before


def host_speed() -> float:
    """CPU seconds of a fixed loop of Python additions, the best of three."""
    times = []
    for _ in range(3):
        start, total = time.process_time(), 0
        for i in range(20_000_000):
            total += i
        times.append(time.process_time() - start)
    return min(times)


def main(argv: list[str]) -> None:
    runs = int(argv[argv.index("--runs") + 1]) if "--runs" in argv else 1
    warm = "--warm" in argv
    skip = {argv.index("--runs") + 1} if "--runs" in argv else set()
    names = [a for i, a in enumerate(argv) if not a.startswith("--") and i not in skip]
    unknown = [n for n in names if not any(n in case for case in CASES)]
    if unknown:
        raise SystemExit(f"unknown case(s) {unknown}; cases: {sorted(CASES)}")
    chosen = [case for case in CASES if not names or any(n in case for n in names)]
    print("cold first call: CPU seconds of `import stabsim` + the call (wall seconds to its "
          "return), empty Numba cache" + (" (then warm: the same cache filled)" if warm else "")
          + "; exit: wall seconds of the interpreter's exit after it")
    print(f"this host now: {host_speed():.2f} s of CPU for a loop of 2·10⁷ additions in "
          "Python (compilation is mostly Python: compare hosts, or hours, by it)")
    with tempfile.TemporaryDirectory() as modules:
        write_tutorial_module(modules)
        _time_cases(chosen, runs, warm)


def _time_cases(chosen: list[str], runs: int, warm: bool) -> None:
    starts = {}
    for name in chosen:
        loss, call = CASES[name]
        if loss not in starts:
            starts[loss] = sharpness_at_start(loss)
        program = script(loss, call, starts[loss])
        cold, hot = [], []
        for _ in range(runs):
            with tempfile.TemporaryDirectory() as cache:
                cold.append(run(program, cache))
                if warm:
                    hot.append(run(program, cache))
        line = f"  {name:28s} cold " + _times(cold, 5)
        if warm:
            line += "   warm " + _times(hot, 4)
        print(line, flush=True)


def _times(runs: list[tuple[float, float, float, float]], width: int) -> str:
    """CPU seconds (wall seconds to the call's return) of each run, then each run's exit,
    then the CPU seconds of all its processes."""
    return (", ".join(f"{c:{width}.2f} ({w:{width}.2f})" for c, w, _, _ in runs)
            + " s, exit " + ", ".join(f"{e:4.2f}" for _, _, e, _ in runs) + " s, all CPU "
            + ", ".join(f"{a:{width}.2f}" for *_, a in runs) + " s")


if __name__ == "__main__":
    main(sys.argv[1:])
