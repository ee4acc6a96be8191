"""The sweep's chunk store under attack: a concurrent writer, kill -9, corrupt chunk files."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from ctrl_c import ctrl_c_at_chunk
from same_result import assert_same_result

import stabsim.sweep.backends as backends
from stabsim.sweep import SweepConfig, run_sweep
from stabsim.sweep.store import (
    ChunkStore,
    CorruptChunkWarning,
    WorkdirBusyError,
    default_workdir,
    output_temporary,
)

CONFIG = SweepConfig(model="reduced", grid={"eta": list(np.linspace(0.005, 0.3, 8)),
                                            "x0": list(np.geomspace(1e-4, 1.0, 5))},
                     steps=2000, chunk_size=6)  # 40 cells, 7 chunks (the last one of 4)
TABLES = {"sweep": {"model": "reduced", "steps": 2000, "chunk_size": 6},
          "grid": {"eta": CONFIG.grid["eta"], "x0": CONFIG.grid["x0"]}}

# The child runs the sweep and stops in the middle of writing its ACTth chunk file (the
# temporary file is written, not yet moved into place): it either waits there for the file
# GO to appear (after creating READY) or SIGKILLs itself.
CHILD = textwrap.dedent("""
    import json, os, signal, sys, time
    import stabsim.sweep.store as store
    from stabsim.sweep import SweepConfig, run_sweep

    tables, output, act, how, ready, go = sys.argv[1:]
    config = SweepConfig.from_dict(json.loads(tables))
    real_replace, calls = os.replace, []

    def replace(src, dst):
        if str(dst).endswith(".npz"):
            calls.append(dst)
            if len(calls) == int(act):
                if how == "kill":
                    os.kill(os.getpid(), signal.SIGKILL)
                open(ready, "w").close()
                while not os.path.exists(go):
                    time.sleep(0.02)
        real_replace(src, dst)

    store.os.replace = replace
    run_sweep(config, output, progress=False)
""")


def _child(tmp_path, output, act, how):
    args = [sys.executable, "-c", CHILD, json.dumps(TABLES), str(output), str(act), how,
            str(tmp_path / "ready"), str(tmp_path / "go")]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _count_computed(monkeypatch):
    computed = []
    real = backends.compute_chunk
    monkeypatch.setattr(backends, "compute_chunk",
                        lambda config, index: computed.append(index) or real(config, index))
    return computed


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The sweep run once without interruption (the reference for bit-for-bit checks)."""
    return run_sweep(CONFIG, tmp_path_factory.mktemp("straight") / "straight.nc",
                     progress=False).to_xarray()


def test_a_second_sweep_is_refused_while_the_first_runs(tmp_path, straight):
    output = tmp_path / "out.nc"
    first = _child(tmp_path, output, act=3, how="wait")
    try:
        deadline = time.monotonic() + 300
        while not (tmp_path / "ready").exists():
            assert first.poll() is None, first.communicate()[1]
            assert time.monotonic() < deadline, "the first sweep never reached chunk 3"
            time.sleep(0.05)
        directory = default_workdir(output) / CONFIG.key
        before = sorted(p.name for p in directory.iterdir())
        assert any(name.endswith(".tmp") for name in before)  # its chunk in flight
        with pytest.raises(WorkdirBusyError, match=f"pid {first.pid} on "):
            run_sweep(CONFIG, output, progress=False)
        # the refused sweep deleted nothing of the first one's, temporaries included
        assert sorted(p.name for p in directory.iterdir()) == before
    finally:
        (tmp_path / "go").touch()
        _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    assert_same_result(xr.load_dataset(output), straight)
    assert not default_workdir(output).exists()


def test_kill_9_releases_the_lock_and_the_next_run_cleans_up_after_it(
        tmp_path, monkeypatch, straight):
    output = tmp_path / "out.nc"
    killed = _child(tmp_path, output, act=4, how="kill")
    _, stderr = killed.communicate(timeout=300)
    assert killed.returncode == -signal.SIGKILL, stderr
    directory = default_workdir(output) / CONFIG.key
    assert len(list(directory.glob("chunk_*.npz"))) == 3
    assert len(list(directory.glob("*.tmp"))) == 1  # the fourth chunk, never moved in
    stale = output_temporary(output, ChunkStore(default_workdir(output), CONFIG))
    stale.write_bytes(b"half an output file of a killed run")

    computed = _count_computed(monkeypatch)
    resumed = run_sweep(CONFIG, output, progress=False).to_xarray()  # the lock died with its holder
    assert sorted(computed) == list(range(3, CONFIG.n_chunks))
    assert not stale.exists() and not default_workdir(output).exists()
    assert_same_result(resumed, straight)
    assert_same_result(xr.load_dataset(output), straight)


def _corruptions(store):
    """Damage five chunk files, each in another way; returns {index: what was done}."""
    def truncate(path):
        path.write_bytes(path.read_bytes()[:200])

    def empty(path):
        path.write_bytes(b"")

    def garbage(path):
        path.write_bytes(os.urandom(3000))

    def wrong_shape(path):  # a well-formed .npz, but not a chunk of this sweep
        with open(path, "wb") as f:
            np.savez(f, **{"regime": np.zeros(3, dtype=np.int8)})

    def pickled(path):  # object arrays need pickle, which chunks never use
        with open(path, "wb") as f:
            np.savez(f, **{"regime": np.array([{"a": 1}], dtype=object)})

    def edited(path):  # a value changed and the file rewritten: only the checksum shows it
        with np.load(path) as data:
            arrays = {name: data[name] for name in data.files}
        arrays["y_max"] = arrays["y_max"] + 1.0
        with open(path, "wb") as f:
            np.savez(f, **arrays)

    damage = {0: truncate, 1: empty, 2: garbage, 3: wrong_shape, 4: pickled, 6: edited}
    for index, spoil in damage.items():
        spoil(store.path(index))
    return damage


def test_corrupt_chunks_are_named_and_computed_again(tmp_path, monkeypatch, straight):
    workdir = tmp_path / "work"
    run_sweep(CONFIG, workdir=workdir, keep_chunks=True, progress=False)
    store = ChunkStore(workdir, CONFIG)
    damaged = _corruptions(store)
    with zipfile.ZipFile(store.path(5)) as zf:  # chunk 5 is intact: a zip with its checksum
        assert "sha256.npy" in zf.namelist()

    computed = _count_computed(monkeypatch)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run_sweep(CONFIG, workdir=workdir, keep_chunks=True, progress=False).to_xarray()
    messages = [str(w.message) for w in caught if w.category is CorruptChunkWarning]
    assert sorted(computed) == sorted(damaged)
    assert len(messages) == len(damaged)
    for index in damaged:
        assert any(str(store.path(index)) in text for text in messages)
    assert not any("allow_pickle" in text for text in messages)
    assert any("fails its checksum" in text for text in messages)
    assert_same_result(result, straight)


def test_chunks_are_keyed_by_the_numpy_and_numba_versions(monkeypatch):
    import numba

    key = CONFIG.key
    monkeypatch.setattr(numba, "__version__", numba.__version__ + ".other")
    assert CONFIG.key != key
    monkeypatch.undo()
    monkeypatch.setattr(np, "__version__", np.__version__ + ".other")
    assert CONFIG.key != key


def test_chunks_are_keyed_by_stabsims_sources(tmp_path, monkeypatch):
    # the version stays 0.1.0 between releases: an edit of the Python around the kernels
    # (a cell's statistics, the classification) changes the key, though no kernel's stamp
    import shutil

    import stabsim
    from stabsim import _jit
    from stabsim.sweep import config as config_module

    copy = tmp_path / "stabsim"
    shutil.copytree(Path(stabsim.__file__).parent, copy,
                    ignore=shutil.ignore_patterns("__pycache__"))
    before = [_jit._sources_digest(compiled, copy) for compiled in (False, True)]
    with open(copy / "sweep" / "classify.py", "a") as f:
        f.write("# an edit\n")
    after = [_jit._sources_digest(compiled, copy) for compiled in (False, True)]
    assert after[0] != before[0] and after[1] == before[1]
    key = CONFIG.key
    monkeypatch.setattr(config_module, "package_sources_stamp", lambda: after[0])
    assert CONFIG.key != key


def test_a_run_that_fails_before_its_first_chunk_leaves_no_directory(tmp_path, monkeypatch):
    def fail(config, index):
        raise ValueError("refused")

    monkeypatch.setattr(backends, "compute_chunk", fail)
    with pytest.raises(ValueError, match="refused"):
        run_sweep(CONFIG, tmp_path / "out.nc", progress=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("before", [0, 2])
def test_a_ctrl_c_says_what_it_keeps(tmp_path, monkeypatch, caplog, before):
    # Ctrl-C after `before` chunks: with some saved, the message points to them; with none,
    # the work directory is removed, and a message offering to resume from it would lie
    ctrl_c_at_chunk(monkeypatch, before)
    # (the command line adds "stabsim: interrupted": the message does not say it again)
    with caplog.at_level("WARNING", logger="stabsim"), pytest.raises(KeyboardInterrupt):
        run_sweep(CONFIG, tmp_path / "out.nc", progress=False)
    (message,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    workdir = default_workdir(tmp_path / "out.nc") / CONFIG.key
    if before:
        assert message == (f"{before} of 7 chunks are saved in {workdir}; run the same "
                           f"config again to resume")
        assert len(list(workdir.glob("chunk_*.npz"))) == before
    else:
        assert message == "none of the 7 chunks was finished; nothing is kept"
        assert not workdir.exists()


def test_output_and_chunks_get_the_mode_of_a_new_file(tmp_path):
    old = os.umask(0o022)
    try:
        run_sweep(CONFIG, tmp_path / "out.nc", keep_chunks=True, progress=False)
    finally:
        os.umask(old)
    assert (tmp_path / "out.nc").stat().st_mode & 0o777 == 0o644
    chunks = list((default_workdir(tmp_path / "out.nc") / CONFIG.key).glob("chunk_*.npz"))
    assert chunks and all(p.stat().st_mode & 0o777 == 0o644 for p in chunks)


def test_another_work_directory_never_touches_this_ones_output_temporary(tmp_path):
    # the same config and output, run with another work directory while this one writes
    output = tmp_path / "out.nc"
    mine = output_temporary(output, ChunkStore(tmp_path / "mine", CONFIG))
    mine.write_bytes(b"an output being written")
    run_sweep(CONFIG, output, workdir=tmp_path / "theirs", progress=False)
    assert mine.read_bytes() == b"an output being written"
