import os

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


#: the gallery chain, in this order: tests/test_notebooks.py executes and stores the
#: notebooks, then test_docs.py builds the checkout's docs and test_wheel.py an installed
#: wheel's, both rendering the stored executions instead of running every notebook again
GALLERY = {"test_notebooks.py": 1, "test_docs.py": 2, "test_wheel.py": 3}


def pytest_collection_modifyitems(session, config, items):
    """Run the gallery chain first and in order. Its files are one ``xdist_group``, which
    pytest-xdist keeps on one worker (``--dist loadgroup``): the longest chain of the suite
    starts at once while the other workers share the rest."""
    items.sort(key=lambda item: GALLERY.get(item.path.name, len(GALLERY) + 1))  # stable
