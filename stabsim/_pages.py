"""Huge pages for the large buffers that kernels allocate (Linux).

An array a kernel makes (``np.empty`` inside compiled code) comes from ``malloc``, which maps
a large block afresh at each call and the kernel then touches it one 4 KiB page at a time:
at d = 10⁶ a 20-step ``run_gd`` took 14,098 minor page faults (3,196 with the advice), and
their handling was 38% of the samples of calls that measure the sharpness once. NumPy
advises the kernel to back its own large arrays with huge pages (``madvise(MADV_HUGEPAGE)``
from 4 MiB up); :func:`large_empty` gives the kernels' arrays the same advice. Elsewhere than
on Linux it is ``np.empty`` alone.
"""

import sys

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ._jit import inline

#: the size from which the advice is given, NumPy's own (smaller arrays gain nothing: a
#: huge page is 2 MiB)
ADVISED_BYTES = 1 << 22
_PAGE = 4096
_MADV_HUGEPAGE = 14  # Linux's value


@intrinsic
def _advise_huge_pages(typingctx, array):
    """``madvise(MADV_HUGEPAGE)`` on the whole pages of a C-contiguous array of at least
    :data:`ADVISED_BYTES` (Linux; nothing elsewhere). An advice: its result is not read (a
    kernel without transparent huge pages refuses it, and the array is as good)."""
    if not (isinstance(array, types.Array) and array.layout == "C"):
        return None

    def codegen(context, builder, signature, args):
        if sys.platform.startswith("linux"):
            values = context.make_array(array)(context, builder, args[0])
            word = ir.IntType(64)
            size = builder.mul(values.nitems, values.itemsize)
            with builder.if_then(builder.icmp_signed(">=", size, word(ADVISED_BYTES)),
                                 likely=False):
                start = builder.ptrtoint(values.data, word)
                skip = builder.sub(word(_PAGE), builder.urem(start, word(_PAGE)))
                pointer = ir.IntType(8).as_pointer()
                advise = cgutils.get_or_insert_function(
                    builder.module,
                    ir.FunctionType(ir.IntType(32), [pointer, word, ir.IntType(32)]), "madvise")
                builder.call(advise, [builder.inttoptr(builder.add(start, skip), pointer),
                                      builder.sub(size, skip), ir.IntType(32)(_MADV_HUGEPAGE)])
        return context.get_dummy_value()

    return types.none(array), codegen


@inline
def large_empty(shape):
    """``np.empty(shape)``, backed by huge pages where it is large (:mod:`stabsim._pages`)."""
    values = np.empty(shape)
    _advise_huge_pages(values)
    return values
