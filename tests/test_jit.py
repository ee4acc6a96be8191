"""stabsim._jit: stabsim's always-inlined functions are typed from their spliced code alone."""

import numba
from numba.core.registry import cpu_target
from numba.extending import register_jitable

from stabsim import _jit, _lanczos


@register_jitable(inline="always")
def _outside_stabsim(a, b):
    return a * a + b * b


def _helper_dispatchers(function):
    """The dispatchers Numba made for the always-inlined ``function``'s implementation."""
    function_type = cpu_target.typing_context.resolve_value_type(function)
    return [dispatcher for template in function_type.templates
            for dispatcher, _ in template._impl_cache.values() if dispatcher is not None]


def test_a_spliced_stabsim_helper_is_never_compiled_on_its_own():
    # the kernel splices stabsim._lanczos.hypot (inline="always") and a helper of this module
    # made the same way; Numba compiles the latter alone before splicing it (the control: what
    # stabsim._jit spares its own helpers), the former not at all
    assert getattr(_jit.templates._OverloadFunctionTemplate._get_jit_decorator,
                   "splices_alone", False)

    @numba.njit
    def kernel(a, b):
        return _lanczos.hypot(a, b) + _outside_stabsim(a, b)

    assert kernel(3.0, 4.0) == 5.0 + 25.0
    ours = _helper_dispatchers(_lanczos.hypot)
    theirs = _helper_dispatchers(_outside_stabsim)
    assert ours and all(not dispatcher.signatures for dispatcher in ours)
    assert theirs and all(dispatcher.signatures for dispatcher in theirs)
