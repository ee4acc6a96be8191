"""The Euclidean norm of a NumPy vector without the overflow of squaring its entries."""

from __future__ import annotations

import numpy as np


def norm(v) -> float:
    """|v| = s |v/s| with s = max |v_i|: no overflow from squaring entries past 1e154 (inf
    only if |v| is), no NumPy warning; 0 for an empty or zero vector, NaN if an entry is."""
    scale = float(np.max(np.abs(v))) if v.size else 0.0
    if scale == 0.0 or not np.isfinite(scale):
        return scale
    return scale * float(np.linalg.norm(v / scale))
