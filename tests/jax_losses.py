"""Losses written in JAX, built by factories that sweeps import by name (``jax_losses:...``)."""

from stabsim.losses import from_jax


def minimalist(scale=1.0):
    """ℓ(x, y) = (scale/4) (x² y² − 1)² (THEORY §5), from JAX."""
    return from_jax(lambda w, c: 0.25 * c * (w[0] ** 2 * w[1] ** 2 - 1.0) ** 2, 2, params=scale)


def quartic_value(w, c):
    """ℓ(x, y) = (c/4)(x² y² − 1)² + 0.1|w|², a module-level function (picklable)."""
    return 0.25 * c * (w[0] ** 2 * w[1] ** 2 - 1.0) ** 2 + 0.1 * (w @ w)
