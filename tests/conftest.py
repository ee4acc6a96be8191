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


def pytest_collection_modifyitems(session, config, items):
    """Run the documentation builds last: they render the gallery's notebooks from the
    executed notebooks that tests/test_notebooks.py stores, instead of executing each one a
    second time (test_docs.py builds the checkout's docs, test_wheel.py an installed wheel's)."""
    last = {"test_docs.py": 1, "test_wheel.py": 2}
    items.sort(key=lambda item: last.get(item.path.name, 0))  # stable: order kept
