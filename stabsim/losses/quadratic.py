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
        """inf L: 0 when A is positive semidefinite, −inf otherwise (one ``eigvalsh``).

        Semidefinite to within the round-off of ``eigvalsh``, d ε ‖A‖₂: a singular A
        (v vᵀ, say) has computed eigenvalues of either sign at about ε ‖A‖₂ where its exact
        ones are 0, and no smaller negative eigenvalue is told from 0.
        """
        values = np.linalg.eigvalsh(self.A)
        floor = -self.dim * np.finfo(float).eps * max(abs(values[0]), abs(values[-1]))
        return 0.0 if values[0] >= floor else -np.inf

    @property
    def sharpness(self) -> float:
        """λ_max(A), the sharpness at every point."""
        return float(np.linalg.eigvalsh(self.A)[-1])
