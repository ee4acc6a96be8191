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
    """Run the documentation build last: it executes the gallery's notebooks in Jupyter
    kernels, which then load the kernels the notebook tests compiled from Numba's disk cache
    (40 s instead of up to 220 s from nothing compiled)."""
    items.sort(key=lambda item: item.path.name == "test_docs.py")  # stable: order kept
