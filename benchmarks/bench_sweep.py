"""Benchmark: a 1000 × 1000 (η, x₀) phase diagram of the reduced map, 10,000 steps per cell.

10¹⁰ map steps at most, classified and written to netCDF, end to end: first on this
machine (Numba threads), then through a Dask ``LocalCluster`` with one single-threaded
worker process per core (cluster start-up timed separately). Prints both times and their
ratio. A script, not a test: timings never fail anything.

    python benchmarks/bench_sweep.py [--n 1000] [--steps 10000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from stabsim.sweep import SweepConfig, run_sweep


def config(n: int, steps: int) -> SweepConfig:
    return SweepConfig(model="reduced", steps=steps,
                       params={"alpha": 1.0, "beta": 1.0, "y0": 0.0},
                       grid={"eta": {"start": 0.001, "stop": 0.1, "num": n},
                             "x0": {"start": 1e-4, "stop": 1.0, "num": n, "spacing": "log"}})


def timed_sweep(cfg, output, **kwargs):
    start = time.perf_counter()
    ds = run_sweep(cfg, output, progress=False, **kwargs).to_xarray()
    return time.perf_counter() - start, ds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="grid points per axis")
    parser.add_argument("--steps", type=int, default=10_000)
    args = parser.parse_args()
    cfg = config(args.n, args.steps)
    cores = os.cpu_count()
    print(f"{args.n} x {args.n} cells, {args.steps} steps, {cfg.n_chunks} chunks of "
          f"{cfg.chunk_size} cells, {cores} cores")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run_sweep(config(4, 10), tmp / "warm.nc", progress=False)  # load compiled kernels
        local, ds = timed_sweep(cfg, tmp / "local.nc")
        steps_run = int(ds["steps_run"].sum())
        counts = {name: int((ds["regime"] == code).sum()) for code, name in
                  zip(ds["regime"].attrs["flag_values"],
                      ds["regime"].attrs["flag_meanings"].split(), strict=True)}
        print(f"classes: {counts}")
        print(f"local: {local:.2f} s end to end ({steps_run:.3g} map steps run, "
              f"{steps_run / local:.3g} steps/s)")

        from distributed import Client, LocalCluster

        start = time.perf_counter()
        with LocalCluster(n_workers=cores, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            started = time.perf_counter() - start
            timed_sweep(config(4, 10), tmp / "warm_dask.nc", client=client)
            dask, ds_dask = timed_sweep(cfg, tmp / "dask.nc", client=client)
        same = all(np.array_equal(ds[v].values, ds_dask[v].values, equal_nan=True)
                   for v in ds.data_vars)
        print(f"dask: {dask:.2f} s end to end (+ {started:.1f} s cluster start-up); "
              f"identical to local: {same}")
        print(f"dask / local: {dask / local:.2f}")


if __name__ == "__main__":
    main()
