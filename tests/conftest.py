import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# One project-wide Hypothesis profile: no deadline (first calls compile kernels), and
# derandomised in CI so a run is reproducible.
settings.register_profile(
    "stabsim",
    deadline=None,
    max_examples=40,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=bool(os.environ.get("CI")),
)
settings.load_profile("stabsim")

# Each test process (and every process it starts) compiles in itself only: the second
# process that compiles a loss's derivatives while an engine compiles
# (stabsim.losses._compile_ahead) would compete for the cores with the other test worker.
# tests/test_compile_ahead.py turns it on where it tests it.
os.environ["STABSIM_COMPILE_AHEAD"] = "0"


@pytest.fixture
def python_sigint():
    """Python's own SIGINT handler during the test, the previous one after it. The Ctrl-C
    tests need it: a test run started in the background inherits SIGINT ignored (a shell
    ignores it for background jobs), and a runner may install a handler of its own."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("a SIGINT handler can be set from the main thread only")
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture
def thick_switches(monkeypatch):
    """The stalls after which a run went on with thick Lanczos restarts during the test
    (one entry per switch), seen by wrapping ``thick_after_stall`` where the drivers
    call it."""
    from stabsim.maps import adaptive, gd, sgd
    from stabsim.sweep import gd_cells

    switches = []
    original = gd.thick_after_stall

    def spy(eigen, status):
        thick = original(eigen, status)
        if thick is not None:
            switches.append(type(eigen).__name__)
        return thick

    for module in (gd, adaptive, sgd, gd_cells):
        monkeypatch.setattr(module, "thick_after_stall", spy)
    return switches


#: the gallery chain, in this order: tests/test_notebooks.py executes and stores the
#: notebooks, then test_docs.py builds the checkout's docs and test_wheel.py an installed
#: wheel's, both rendering the stored executions instead of running every notebook again
GALLERY = {"test_notebooks.py": 1, "test_docs.py": 2, "test_wheel.py": 3}


def pytest_collection_modifyitems(session, config, items):
    """Run the gallery chain first and in order. Its files are one ``xdist_group``, which
    pytest-xdist keeps on one worker (``--dist loadgroup``): the longest chain of the suite
    starts at once while the other workers share the rest."""
    items.sort(key=lambda item: GALLERY.get(item.path.name, len(GALLERY) + 1))  # stable


def pytest_sessionstart(session):
    """Before pytest-xdist starts its workers (its hook runs last), compile the kernels most
    test files share in one process per worker, each its share (``tests/_warm.py``), so
    that the workers read them from the cache instead of each compiling all of them."""
    config = session.config
    workers = getattr(config.option, "numprocesses", None)
    if hasattr(config, "workerinput") or not isinstance(workers, int) or workers < 2:
        return
    warm = Path(__file__).with_name("_warm.py")
    processes = [subprocess.Popen([sys.executable, str(warm), str(i), str(workers)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for i in range(workers)]
    for process in processes:
        process.wait()
