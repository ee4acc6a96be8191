"""Numba kernels of the built-in loss families, one module per family.

Every family module defines the same five kernels, each taking the iterate ``theta``
(float64, shape ``(d,)``) and the family's packed parameters ``p`` (float64, 1-D):

- ``value(theta, p) -> float``                 L(θ)
- ``grad(theta, p, out)``                      out ← ∇L(θ)
- ``hvp(theta, p, v, out)``                    out ← ∇²L(θ) v
- ``hess(theta, p, out)``                      out ← ∇²L(θ)            (shape (d, d))
- ``d3(theta, p, u, v, out)``                  out ← ∇³L(θ)[u, v]      (a vector)

Kernels write into ``out`` (they never allocate their result) and never raise.
"""
