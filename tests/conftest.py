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
