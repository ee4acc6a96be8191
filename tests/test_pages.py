"""The huge-page advice on the kernels' large buffers (``stabsim._pages``): the memory of a
large array a kernel makes is marked for huge pages (Linux's ``hg`` flag of its mapping),
and the array is the ``np.empty`` it stands for."""

import sys
from pathlib import Path

import numba
import numpy as np
import pytest

from stabsim._pages import ADVISED_BYTES, large_empty

HUGE_PAGES = (sys.platform.startswith("linux")
              and Path("/sys/kernel/mm/transparent_hugepage").is_dir())


@numba.njit
def _made_in_a_kernel(shape):
    return large_empty(shape)


def _vm_flags(address):
    """The ``VmFlags`` of the mapping of this process that holds ``address``."""
    inside = False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()[0]
        if "-" in head and not head.endswith(":"):
            start, end = (int(x, 16) for x in head.split("-"))
            inside = start <= address < end
        elif inside and head == "VmFlags:":
            return line.split()[1:]
    raise AssertionError(f"no mapping holds {address:#x}")


def test_large_empty_is_an_empty_array():
    values = _made_in_a_kernel((3, 5))
    assert values.shape == (3, 5) and values.dtype == np.float64
    assert values.flags.c_contiguous and values.flags.writeable
    values[:] = 1.0  # its memory is its own
    assert values.sum() == 15.0


@numba.njit
def _plain_in_a_kernel(shape):
    return np.empty(shape)


#: above glibc's largest threshold for mapping a block of its own (32 MiB), so that each
#: array is a mapping of its own, made for it, whose flags no earlier array set
FRESH_MAPPING = (8, 1 << 20)  # 64 MiB


@pytest.mark.skipif(not HUGE_PAGES, reason="transparent huge pages are a Linux feature")
def test_large_arrays_are_advised():
    plain, advised = _plain_in_a_kernel(FRESH_MAPPING), _made_in_a_kernel(FRESH_MAPPING)
    assert plain.nbytes >= ADVISED_BYTES
    # the advice covers the array's whole pages: its middle lies in an advised mapping, and
    # in a mapping without the advice had it not been given
    assert "hg" not in _vm_flags(plain.ctypes.data + plain.nbytes // 2)
    assert "hg" in _vm_flags(advised.ctypes.data + advised.nbytes // 2)
