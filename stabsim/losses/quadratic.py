"""The quadratic loss L(θ) = ½ θᵀAθ."""

from __future__ import annotations

import numpy as np

from .._validate import finite_array, symmetric
from ._base import Loss
from .kernels.quadratic import QuadraticParams


class Quadratic(Loss):
    """L(θ) = ½ θᵀAθ with A symmetric.

    The Hessian is A everywhere, so the sharpness is λ_max(A) and the third derivative
    vanishes. GD along an eigenvector with eigenvalue a is ``x ← (1 − ηa) x``: monotone
    convergence for η < 1/a, oscillating convergence for 1/a < η < 2/a, divergence for
    η > 2/a (docs/theory.md §0).

    Parameters
    ----------
    A : array_like, shape (d, d) or (d,)
        The symmetric matrix, or its diagonal.
    """

    name = "quadratic"

    def __init__(self, A):
        A = finite_array("A", A)
        if A.ndim == 1:
            A = np.diag(A)
        if A.ndim != 2:
            raise ValueError(f"A must be a square matrix or its diagonal, got shape {A.shape}")
        if A.shape[0] != A.shape[1] or A.shape[0] == 0:
            raise ValueError(f"A must be a non-empty square matrix, got shape {A.shape}")
        A = symmetric("A", A)
        super().__init__(QuadraticParams(A), A.shape[0], check=False)

    def __repr__(self) -> str:
        return f"Quadratic(dim={self.dim})"

    @property
    def A(self) -> np.ndarray:
        """The matrix A (held once, in the parameter record)."""
        return self.params.A

    @property
    def min_value(self) -> float:
        """inf L: 0 when A is positive semidefinite, −inf otherwise (one ``eigvalsh``)."""
        return 0.0 if np.linalg.eigvalsh(self.A)[0] >= 0.0 else -np.inf

    @property
    def sharpness(self) -> float:
        """λ_max(A), the sharpness at every point."""
        return float(np.linalg.eigvalsh(self.A)[-1])
