"""Sweep execution: resumption after kill -9, Dask equals local bit for bit, CLI end to end."""

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import xarray as xr
from same_result import assert_same_result

from stabsim.cli import main
from stabsim.sweep import SweepConfig, run_sweep

MAP = SweepConfig(model="reduced", grid={"eta": list(np.linspace(0.005, 0.3, 12)),
                                         "x0": list(np.geomspace(1e-4, 1.0, 9))},
                  steps=3000, chunk_size=10)
GD = SweepConfig(model="gd", grid={"eta": [0.05, 0.2, 0.3, 0.45], "scale": [0.5, 1.0]},
                 params={"theta0": [2.0, 0.3]}, loss={"name": "minimalist"}, steps=300,
                 chunk_size=3)

# The child runs a sweep and SIGKILLs itself while writing its fourth chunk file (after
# the temporary file is written, before it is moved into place): a kill -9 at the worst
# moment, at a reproducible point.
CHILD = textwrap.dedent("""
    import os, signal, sys
    import stabsim.sweep.store as store
    from stabsim.sweep import SweepConfig, run_sweep

    config = SweepConfig.from_dict(__import__("json").loads(sys.argv[1]))
    real_replace, calls = os.replace, []

    def replace(src, dst):
        if str(dst).endswith(".npz"):
            calls.append(dst)
            if len(calls) == 4:
                os.kill(os.getpid(), signal.SIGKILL)
        real_replace(src, dst)

    store.os.replace = replace
    run_sweep(config, sys.argv[2], progress=False)
""")


def _tables(config):
    """The config as TOML-like tables (what the child reads)."""
    d = config.to_dict()
    return {"sweep": {k: d[k] for k in ("model", "steps", "chunk_size")},
            "params": d["params"], "grid": d["grid"]}


def test_killed_sweep_resumes_and_matches_an_uninterrupted_one(tmp_path, monkeypatch):
    import json

    output = tmp_path / "killed.nc"
    child = subprocess.run([sys.executable, "-c", CHILD, json.dumps(_tables(MAP)), str(output)],
                           capture_output=True, text=True)
    assert child.returncode == -signal.SIGKILL, child.stderr
    chunk_dir = tmp_path / "killed.nc.chunks" / MAP.key
    saved = sorted(p.name for p in chunk_dir.glob("chunk_*.npz"))
    assert len(saved) == 3 and not output.exists()  # the fourth was never moved in place
    before = {p: os.stat(chunk_dir / p).st_mtime_ns for p in saved}

    computed = []
    import stabsim.sweep.backends as backends

    real = backends.compute_chunk
    monkeypatch.setattr(backends, "compute_chunk",
                        lambda config, index: computed.append(index) or real(config, index))
    resumed = run_sweep(MAP, output, keep_chunks=True, progress=False).to_xarray()
    assert sorted(computed) == sorted(set(range(MAP.n_chunks)) - {0, 1, 2})
    assert {p: os.stat(chunk_dir / p).st_mtime_ns for p in saved} == before
    assert not list(chunk_dir.glob("*.tmp"))

    monkeypatch.undo()
    straight = run_sweep(MAP, tmp_path / "straight.nc", progress=False).to_xarray()
    assert not (tmp_path / "straight.nc.chunks").exists()  # removed once written
    for ds in (resumed, xr.load_dataset(output)):
        assert_same_result(ds, straight)
        for name in straight.data_vars:
            assert ds[name].values.tobytes() == straight[name].values.tobytes()


def test_same_config_same_numbers_with_any_thread_count():
    import numba

    full = run_sweep(GD).to_xarray()
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        serial = run_sweep(GD).to_xarray()
    finally:
        numba.set_num_threads(threads)
    assert_same_result(full, serial)


@pytest.mark.slow
def test_dask_local_cluster_equals_local_bit_for_bit():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        for config in (MAP, GD):
            on_dask = run_sweep(config, client=client, progress=False).to_xarray()
            local = run_sweep(config, progress=False).to_xarray()
            assert_same_result(on_dask, local)
            for name in local.data_vars:
                assert on_dask[name].values.tobytes() == local[name].values.tobytes()
        # the chunk tasks limited each worker's Numba pool (a per-thread setting) to the
        # worker's one thread: later tasks on the same executor thread see it
        for worker in client.scheduler_info()["workers"]:
            future = client.submit(_numba_threads, workers=[worker], pure=False)
            assert future.result() == 1


def _numba_threads():
    import numba

    return numba.get_num_threads()


def test_cli_sweep_and_plot_end_to_end(tmp_path, capsys):
    config = tmp_path / "tiny.toml"
    config.write_text(textwrap.dedent("""
        [sweep]
        model = "gd"
        steps = 200
        [loss]
        name = "quadratic"
        A = [4.0]
        [params]
        theta0 = [1.0]
        [grid]
        eta = [0.1, 0.3, 0.6]
        scale = {start = 0.5, stop = 2.0, num = 3, spacing = "log"}
    """))
    assert main(["sweep", str(config), "--no-progress"]) == 0
    result = tmp_path / "tiny.nc"
    ds = xr.load_dataset(result)
    assert ds["regime"].dims == ("eta", "scale")
    assert ds["regime"].sel(eta=0.6).values.tolist() == [3, 3, 3]  # 0.6 > 2/a: diverged
    assert ds["regime"].sel(eta=0.1).values.tolist() == [0, 0, 0]
    assert SweepConfig.from_dict(_from_json(ds.attrs["config"])).key == ds.attrs["config_key"]

    assert main(["plot", str(result)]) == 0
    figure = tmp_path / "tiny.png"
    assert figure.stat().st_size > 10_000
    assert "wrote" in capsys.readouterr().err
    assert main(["plot", str(result), "--x", "nope"]) == 2


def _from_json(text):
    """Rebuild config tables from a result's ``config`` attribute."""
    import json

    d = json.loads(text)
    sweep = {k: d[k] for k in ("model", "method", "steps", "stride", "combine", "chunk_size",
                               "divergence_norm")}
    return {"sweep": sweep, "params": d["params"], "grid": d["grid"], "loss": d["loss"],
            "classify": {"band": d["band"], "window": d["window"]}}


def test_gd_sweep_on_the_regression_model_matches_dense_sharpness():
    # d = 40 > 32: the sweep's cells use Lanczos with the regression model's Gauss–Newton
    # factor (factor_rows = n per cell, here n = 3 and 6 in one sweep); the largest recorded
    # S·η/2 must equal the top of eigvalsh of the dense Hessian along the same GD run
    from stabsim.losses import QuadraticRegression
    from stabsim.maps import run_gd

    config = SweepConfig(model="gd", grid={"eta": [0.5, 1.5], "loss.n": [3, 6]},
                         loss={"name": "regression.random", "d": 40, "seed": 2},
                         params={"scale": 0.1, "seed": 5}, steps=40, chunk_size=2)
    result = run_sweep(config, progress=False).to_xarray()
    for eta in (0.5, 1.5):
        for n in (3, 6):
            cell = result.sel(eta=eta, **{"loss.n": n})
            loss = QuadraticRegression.random(40, n, seed=2)
            start = np.random.default_rng(5).standard_normal(40)
            start *= 0.1 / np.linalg.norm(start)
            run = run_gd(loss, start, eta, 40, record_trajectory=True, eigensolver="eigh")
            assert int(cell["steps_run"]) == run.counters["steps"]
            dense = [np.linalg.eigvalsh(loss.hessian(th))[-1] for th in run.trajectory]
            # Lanczos stops at relative residual 1e-10: the eigenvalue is then exact to
            # residual²/gap, far below the 1e-9 allowed here
            np.testing.assert_allclose(float(cell["max_rel_sharpness"]),
                                       max(dense) * eta / 2, rtol=1e-9)
