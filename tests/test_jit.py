"""stabsim._jit: stabsim's always-inlined functions are typed from their spliced code alone,
large libraries are linked into stabsim's kernels after their optimisation, a function that
only kernels link in gets machine code only when something asks for it (a kernel-only
function's cache entry holds none), no stabsim function gets a C entry point, LLVM
optimises the code compiled for stabsim at stabsim's level, and the patches that spare Numba
work on stabsim's code (operators on scalars, reference counts, post-processing, typing by
a remembered template) give Numba's answers and the same machine code, and Numba's messages
are built without terminal markup only while stabsim's code compiles."""

import ctypes
import inspect
import json
import os
import pickle
import subprocess
import sys
from types import SimpleNamespace

import numba
import numpy as np
import pytest
from numba.core.registry import cpu_target
from numba.extending import register_jitable

from stabsim import _jit
from stabsim.maps._gd_kernels import _tiny_top


@register_jitable(inline="always")
def _outside_stabsim(a, b):
    return a * a + b * b


def _helper_dispatchers(function):
    """The dispatchers Numba made for the always-inlined ``function``'s implementation."""
    function_type = cpu_target.typing_context.resolve_value_type(function)
    return [dispatcher for template in function_type.templates
            for dispatcher, _ in template._impl_cache.values() if dispatcher is not None]


def test_a_spliced_stabsim_helper_is_never_compiled_on_its_own():
    # the kernel splices stabsim.maps._gd_kernels._tiny_top (inline="always") and a helper of
    # this module made the same way; Numba compiles the latter alone before splicing it (the
    # control: what stabsim._jit spares its own helpers), the former not at all
    assert getattr(_jit.templates._OverloadFunctionTemplate._get_jit_decorator,
                   "splices_alone", False)

    @numba.njit
    def kernel(a, b):
        return _tiny_top(a, 0.0, b, True)[1] + _outside_stabsim(a, b)

    assert kernel(3.0, 4.0) == 4.0 + 25.0  # the top eigenvalue of diag(3, 4), then 3² + 4²
    ours = _helper_dispatchers(_tiny_top)
    theirs = _helper_dispatchers(_outside_stabsim)
    assert ours and all(not dispatcher.signatures for dispatcher in ours)
    assert theirs and all(dispatcher.signatures for dispatcher in theirs)


_CALLER_AND_CALLEE = """
import numba

@numba.njit
def callee(x):
    return x * x + 1.0

@numba.njit
def caller(x):
    return callee(x) + callee(2.0 * x)
"""


def _caller(module_name):
    """``caller`` and ``callee`` compiled as functions of the module ``module_name``."""
    namespace = {"__name__": module_name}
    exec(_CALLER_AND_CALLEE, namespace)
    caller = namespace["caller"]
    assert caller(3.0) == 10.0 + 37.0
    return caller, namespace["callee"]


def _calls_left(caller):
    """Calls to ``callee`` in ``caller``'s optimised code (0: the optimiser inlined it)."""
    (ir,) = caller.inspect_llvm().values()
    body = ir.split("define ", 2)[1]  # the first definition in the module is caller itself
    return body.count("callee")


@pytest.mark.parametrize("threshold, stabsim_calls", [(0, 2), (10**6, 0)])
def test_a_large_library_is_linked_into_a_stabsim_kernel_after_its_optimisation(
        monkeypatch, threshold, stabsim_calls):
    # with every library counted as large, a stabsim kernel keeps its calls to the callee (the
    # optimiser never saw its body) and holds the callee's code all the same; a kernel outside
    # stabsim, or a library below the threshold, is linked as Numba does, and inlined
    assert getattr(numba.core.codegen.CPUCodeLibrary.finalize, "links_late", False)
    monkeypatch.setattr(_jit, "LATE_LINK_BLOCKS", threshold)
    ours, callee = _caller("stabsim.late_linking_test")
    theirs, _ = _caller("late_linking_test")
    assert _calls_left(ours) == stabsim_calls
    assert _calls_left(theirs) == 0
    (library,) = [ours.overloads[sig].library for sig in ours.signatures]
    (callee_library,) = [callee.overloads[sig].library for sig in callee.signatures]
    assert (callee_library in library._stabsim_linked_late) == bool(stabsim_calls)


_PARALLEL_KERNEL = """
import numba
import numpy as np

@numba.njit
def callee(x):
    return 3.0 * x * x + 1.0

@numba.njit(parallel=True)
def kernel(x):
    out = np.empty(x.shape[0])
    for i in numba.prange(x.shape[0]):
        out[i] = callee(x[i])
    return out
"""


@pytest.mark.parametrize("module_name, ours", [("stabsim.parallel_loop_test", True),
                                               ("parallel_loop_test", False)])
def test_a_prange_loop_of_a_stabsim_kernel_gets_machine_code_only_in_the_kernel(
        monkeypatch, module_name, ours):
    # Numba compiles a prange loop's body and two wrappers around it as libraries of their
    # own, each linking in (and optimising again) everything below it, with machine code for
    # each, then links all of it into the kernel. In a stabsim kernel the three are linked
    # late and get no machine code of their own; outside stabsim (the control) Numba's way
    # holds. The kernel computes the same either way.
    made = []
    finalize_specific = numba.core.codegen.JITCodeLibrary._finalize_specific

    def recording(self):
        made.append(self)
        return finalize_specific(self)

    monkeypatch.setattr(numba.core.codegen.JITCodeLibrary, "_finalize_specific", recording)
    namespace = {"__name__": module_name}
    exec(_PARALLEL_KERNEL, namespace)
    x = np.linspace(-1.0, 1.0, 7)
    np.testing.assert_array_equal(namespace["kernel"](x), 3.0 * x * x + 1.0)
    loop_parts = [library for library in made if library.name != "kernel"
                  and any(_jit._PARALLEL_LOOP_MARK in function.name
                          for function in library._final_module.functions
                          if not function.is_declaration)]
    assert len(loop_parts) == (0 if ours else 3)
    (kernel,) = [library for library in made if library.name == "kernel"]
    assert kernel._stabsim_reaches == ours


_KERNEL_AND_HELPER = """
import numba
from {module} import {decorator} as make_helper

@make_helper
def helper(x):
    return 3.0 * x - 1.0

@numba.njit
def kernel(x):
    return helper(x) + helper(x + 1.0)
"""


def _kernel_and_helper_library(module_name, decorator="numba.extending:register_jitable"):
    """``kernel`` compiled as a function of ``module_name`` and the compile result of
    ``helper``, made by ``decorator`` ("module:name")."""
    module, name = decorator.split(":")
    namespace = {"__name__": module_name}
    exec(_KERNEL_AND_HELPER.format(module=module, decorator=name), namespace)
    assert namespace["kernel"](2.0) == 5.0 + 8.0  # (3x − 1) at x = 2 and 3
    (helper,) = _helper_dispatchers(namespace["helper"])
    (result,) = helper.overloads.values()
    return result


@pytest.mark.parametrize("module_name, deferred", [("stabsim.deferral_test", True),
                                                    ("deferral_test", False)])
def test_a_function_only_linked_into_kernels_gets_machine_code_when_asked(module_name,
                                                                           deferred):
    # the helper has no Python entry point: inside stabsim its library is optimised and linked
    # into the kernel without machine code of its own (the kernel above ran on its copy);
    # asking for an address in it makes the code, which then computes what the helper does
    assert getattr(numba.core.cpu.CPUContext.get_executable, "defers_machine_code", False)
    result = _kernel_and_helper_library(module_name)
    library = result.library
    assert library.__dict__.get("_stabsim_machine_code_pending", False) == deferred
    address = library.get_pointer_to_function(result.fndesc.llvm_cfunc_wrapper_name)
    assert address != 0
    assert not library.__dict__.get("_stabsim_machine_code_pending", False)
    helper = ctypes.CFUNCTYPE(ctypes.c_double, ctypes.c_double)(address)
    assert helper(2.0) == 5.0



def _addresses(result):
    """Addresses of a compiled function and of its C entry point (cfunc wrapper; 0: none)."""
    library, fndesc = result.library, result.fndesc
    return (library.get_pointer_to_function(fndesc.llvm_func_name),
            library.get_pointer_to_function(fndesc.llvm_cfunc_wrapper_name))


def test_stabsim_kernels_and_their_helpers_have_no_c_entry_point():
    # Numba gives every compiled function a C entry point unless told not to; stabsim's
    # kernels (a loss family's value, compiled or loaded from the cache) and the helpers only
    # kernels call have none, a plain Numba function (the control) has one
    from stabsim.losses.kernels import minimalist

    value = minimalist.value(np.array([1.5, 0.4]), minimalist.MinimalistParams())
    assert value == pytest.approx(0.25 * (0.36 - 1.0) ** 2, rel=1e-15)
    (kernel,) = minimalist.value.overloads.values()
    function, entry = _addresses(kernel)
    assert function != 0 and entry == 0

    helper = _kernel_and_helper_library("stabsim.entry_point_test", "stabsim._jit:inline")
    function, entry = _addresses(helper)
    assert function != 0 and entry == 0

    control = numba.njit(lambda x: 2.0 * x)
    assert control(1.0) == 2.0
    (control_result,) = control.overloads.values()
    function, entry = _addresses(control_result)
    assert function != 0 and entry != 0


def test_compiler_flags_hash_and_compare_as_numba_defines_them():
    # stabsim computes the flags' hash once per class and compares set options first; the
    # results must be Numba's definitions: hash(tuple(sorted(values()))) and values() == ...
    from numba.core.compiler import Flags

    assert getattr(numba.core.targetconfig.TargetConfig.__eq__, "compares_quickly", False)
    plain, explicit, other = Flags(), Flags(), Flags()
    explicit.nrt = Flags.options["nrt"].default  # set to its default: equal to unset
    other.nrt = not Flags.options["nrt"].default
    for flags in (plain, explicit, other):
        assert hash(flags) == hash(tuple(sorted(flags.values())))
    # options set on one side only, or on both to different values: only those are compared
    both, mixed = Flags(), Flags()
    both.nrt, both.boundscheck = other.nrt, Flags.options["boundscheck"].default
    mixed.boundscheck = not Flags.options["boundscheck"].default
    pairs = [(plain, plain), (plain, explicit), (explicit, plain), (plain, other),
             (other, explicit), (plain, plain.copy()), (other, both), (both, other),
             (both, mixed), (mixed, plain), (explicit, both)]
    for a, b in pairs:
        assert (a == b) == (a.values() == b.values())
    assert plain == explicit and plain != other and other == both and both != mixed


_KERNEL_ONLY = """
from stabsim._jit import entry_for, jit

@jit(kernel_only=True)
def square_plus_one(x):
    return x * x + 1.0

@entry_for(square_plus_one)
def square_plus_one_from_python(x):
    return square_plus_one(x)

@jit(kernel_only=True)
def halve(x):
    return 0.5 * x

@jit
def kernel(x):
    return square_plus_one(x) + halve(x)

@jit
def other_kernel(x):
    return 4.0 * halve(x)
"""


def _load_module(path):
    """The namespace of a module of stabsim's (so its kernel-only functions are deferred) run
    from the file ``path`` (the disk cache needs a source file, and a cache entry names a
    module it can import)."""
    import sys
    import types

    module = types.ModuleType("stabsim.kernel_only_test")
    module.__file__ = path
    sys.modules[module.__name__] = module
    exec(compile(open(path).read(), path, "exec"), module.__dict__)
    return module.__dict__


def _kernel_only_module(directory):
    """The functions of :data:`_KERNEL_ONLY`, from a file in ``directory``."""
    path = directory / "kernel_only_test.py"
    path.write_text(_KERNEL_ONLY)
    try:
        return _load_module(str(path))
    finally:
        sys.modules.pop("stabsim.kernel_only_test", None)


def test_a_kernel_only_function_runs_in_kernels_and_from_python_only_through_its_entry(
        tmp_path):
    functions = _kernel_only_module(tmp_path)
    assert functions["kernel"](3.0) == 10.0 + 1.5
    assert functions["square_plus_one"](3.0) == 10.0  # through its entry point
    with pytest.raises(TypeError, match="halve is called only from compiled kernels"):
        functions["halve"](2.0)
    # no machine code was made for halve alone, and its cache entry holds none
    (result,) = functions["halve"].overloads.values()
    assert result.library.__dict__.get("_stabsim_machine_code_pending", False)
    assert result.library.serialize_using_object_code()[1] == "bitcode"


_CACHED_KERNEL_ONLY = inspect.getsource(_load_module) + """
import sys
from numba.core import codegen, event
compiled, machine_code = [], []

class Listener(event.Listener):
    def on_start(self, e):
        compiled.append(e.data["dispatcher"].py_func.__qualname__)

    def on_end(self, e):
        pass

event.register("numba:compile", Listener())
make_machine_code = codegen.JITCodeLibrary._finalize_specific

def recording(self):
    machine_code.append(self.name)
    return make_machine_code(self)

codegen.JITCodeLibrary._finalize_specific = recording
print(_load_module(sys.argv[1])[sys.argv[2]](3.0), *compiled)
print(*machine_code)
"""


def test_a_kernel_only_function_is_linked_from_the_disk_cache(tmp_path):
    # a second process compiling a new kernel loads halve from the cache (its optimised code)
    # instead of compiling it, makes no machine code for it alone (the kernel carries its
    # copy), and the new kernel computes 4 · x/2
    _kernel_only_module(tmp_path)  # writes the module's file
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    path = str(tmp_path / "kernel_only_test.py")

    def run(kernel):
        out = subprocess.run([sys.executable, "-c", _CACHED_KERNEL_ONLY, path, kernel],
                             env=env, capture_output=True, text=True, check=True).stdout
        first, machine_code = out.split("\n")[:2]
        value, *compiled = first.split()
        return float(value), compiled, machine_code.split()

    value, compiled, machine_code = run("kernel")
    assert (value, compiled) == (10.0 + 1.5, ["kernel", "square_plus_one", "halve"])
    assert "kernel" in machine_code and "halve" not in machine_code
    value, compiled, machine_code = run("other_kernel")
    assert (value, compiled) == (6.0, ["other_kernel"])
    assert "other_kernel" in machine_code and "halve" not in machine_code
    assert run("kernel")[:2] == (11.5, [])


def test_a_kernel_only_function_pickles_by_name():
    # Numba pickles a dispatcher as its Python function, to be compiled again elsewhere: a
    # kernel-only one would arrive without its entry point from Python
    from stabsim.losses.kernels.network import _real_pass

    assert pickle.loads(pickle.dumps(_real_pass)) is _real_pass


_PARALLEL_CACHED = """
import numpy as np
from numba import prange
from stabsim._jit import jit

@jit(parallel=True)
def doubled(x):
    out = np.empty_like(x)
    for i in prange(x.shape[0]):
        out[i] = 2.0 * x[i]
    return out

@jit
def doubled_sum(x):
    return doubled(x).sum()
"""

_CALL_ON_RANGE = inspect.getsource(_load_module) + """
import sys
import numpy as np
print(_load_module(sys.argv[1])[sys.argv[2]](np.arange(4.0)))
"""


def test_a_kernel_linking_a_cached_parallel_function_starts_the_threads(tmp_path):
    # process 1 compiles the parallel function; process 2 loads it from the cache and
    # compiles a kernel on it; process 3 loads that kernel alone. Its cache entry must hold
    # the hook that starts Numba's threads: without it, process 3 ended in a segmentation
    # fault (as a network in blocks did: run_gd, then Adam twice, each in a new process)
    path = tmp_path / "kernel_only_test.py"
    path.write_text(_PARALLEL_CACHED)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    for name, printed in (("doubled", "[0. 2. 4. 6.]"), ("doubled_sum", "12.0"),
                          ("doubled_sum", "12.0")):
        out = subprocess.run([sys.executable, "-c", _CALL_ON_RANGE, str(path), name],
                             env=env, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr[-2000:]
        assert out.stdout.split("\n")[0] == printed


_OPT_LEVELS = """
import numba
import numpy as np
from numba.core import codegen, config
from stabsim.losses.kernels import minimalist

levels = []
make_pass_builder = codegen.create_pass_builder


def recording(target_machine, opt, **options):
    levels.append(int(opt))
    return make_pass_builder(target_machine, opt=opt, **options)


codegen.create_pass_builder = recording


@numba.njit
def users(theta):
    return theta[0] * theta[1]


users(np.ones(2))
print(sorted(set(levels)))
levels.clear()
minimalist.value(np.ones(2), 0.0)
print(sorted(set(levels)))
print([int(config.OPT)])
"""


def test_code_compiled_for_stabsim_is_optimised_at_its_own_level(tmp_path):
    # a user's function keeps Numba's level; a stabsim kernel (and what it calls) is
    # optimised at STABSIM_OPT_LEVEL; both run Numba's cheap level-0 pass first
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))  # nothing cached: both compile
    env.pop("NUMBA_OPT", None)
    out = subprocess.run([sys.executable, "-c", _OPT_LEVELS], capture_output=True, text=True,
                         env=env, check=True).stdout.splitlines()
    users, stabsims, (numba_level,) = (json.loads(line) for line in out)
    assert numba_level != _jit.STABSIM_OPT_LEVEL
    assert users == [0, numba_level]
    assert stabsims == [0, _jit.STABSIM_OPT_LEVEL]


def test_a_level_the_environment_sets_is_every_codes_level(tmp_path):
    asked = 2  # neither Numba's default nor stabsim's
    assert asked not in (3, _jit.STABSIM_OPT_LEVEL)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path), NUMBA_OPT=str(asked))
    out = subprocess.run([sys.executable, "-c", _OPT_LEVELS], capture_output=True, text=True,
                         env=env, check=True).stdout.splitlines()
    users, stabsims, (numba_level,) = (json.loads(line) for line in out)
    assert numba_level == asked
    assert users == stabsims == [0, asked]


def _compile_event(module):
    def function():
        pass

    function.__module__ = module
    return SimpleNamespace(data={"dispatcher": SimpleNamespace(py_func=function)})


def test_numbas_own_functions_count_as_stabsims_only_when_compiled_for_stabsim():
    # Numba's implementations take the level of the function they are compiled for; a
    # user's function keeps Numba's level even when a stabsim kernel calls it
    compiles = _jit._StabsimCompiles()
    seen = []

    def start(module):
        compiles.on_start(_compile_event(module))
        seen.append(compiles.active())

    def end():
        compiles.on_end(None)
        seen.append(compiles.active())

    start("numba.np.arrayobj")  # for the user's code
    end()
    start("stabsim.maps._gd_kernels")
    start("numba.np.arrayobj")
    start("users_losses")
    start("numba.np.linalg")  # for the user's loss
    end()
    end()
    end()
    end()
    assert seen == [False, False, True, True, False, False, False, True, True, False]


def test_a_compile_event_without_a_dispatcher_counts_as_not_stabsims():
    # another package's event of the same kind must not break a compilation
    compiles = _jit._StabsimCompiles()
    compiles.on_start(SimpleNamespace(data=None))
    assert not compiles.active()
    compiles.on_end(None)
    assert compiles.stabsim == []


def _lock_event_counter():
    counts = {"start": 0, "end": 0}

    class Counter(numba.core.event.Listener):
        def on_start(self, ev):
            counts["start"] += 1

        def on_end(self, ev):
            counts["end"] += 1

    return counts, Counter()


def test_llvm_lock_events_are_left_out_only_while_stabsim_code_compiles():
    # each LLVM call (llvmlite takes its lock around each) starts and ends a numba:llvm_lock
    # event, except while STABSIM_COMPILES says stabsim's code is compiled
    from llvmlite import binding as llvm

    counts, listener = _lock_event_counter()
    with numba.core.event.install_listener("numba:llvm_lock", listener):
        llvm.get_process_triple()
        outside = dict(counts)
        _jit.STABSIM_COMPILES.stabsim.append(True)
        try:
            llvm.get_process_triple()
        finally:
            _jit.STABSIM_COMPILES.stabsim.pop()
        inside = dict(counts)
        _jit.STABSIM_COMPILES.stabsim.append(False)  # a user's function inside a kernel
        try:
            llvm.get_process_triple()
        finally:
            _jit.STABSIM_COMPILES.stabsim.pop()
    assert outside["start"] == outside["end"] > 0
    assert inside == outside
    assert counts == {"start": 2 * outside["start"], "end": 2 * outside["end"]}


def test_a_users_compilation_still_times_its_llvm_calls():
    # Numba's own use of the events: the compile result's llvm_lock timer
    @numba.njit
    def users_function(x):
        return x + 1

    users_function(1)
    assert users_function.overloads[(numba.int64,)].metadata["timers"]["llvm_lock"] > 0


@pytest.fixture
def gc_threshold():
    import gc

    saved, enabled = gc.get_threshold(), gc.isenabled()
    yield gc
    gc.set_threshold(*saved)
    if enabled:
        gc.enable()


def test_the_collector_runs_less_often_only_during_an_outermost_stabsim_compilation(
        gc_threshold):
    gc = gc_threshold
    gc.set_threshold(700, 10, 10)
    listener = _jit._CollectingLessOften()
    seen = []
    listener.on_start(_compile_event("stabsim.maps._gd_kernels"))
    seen.append(gc.get_threshold())
    listener.on_start(_compile_event("users_losses"))  # a user's loss inside the engine
    listener.on_end(None)
    seen.append(gc.get_threshold())
    listener.on_end(None)
    seen.append(gc.get_threshold())
    listener.on_start(_compile_event("users_losses"))  # a user's own compilation
    seen.append(gc.get_threshold())
    listener.on_start(_compile_event("stabsim.maps._gd_kernels"))
    seen.append(gc.get_threshold())
    listener.on_end(None)
    listener.on_end(None)
    raised = (_jit.COMPILE_GC_THRESHOLD, 10, 10)
    assert seen == [raised, raised, (700, 10, 10), (700, 10, 10), (700, 10, 10)]
    assert gc.get_threshold() == (700, 10, 10)


def test_the_collector_keeps_a_users_higher_threshold_and_a_disabled_collector(gc_threshold):
    gc = gc_threshold
    listener = _jit._CollectingLessOften()
    gc.set_threshold(10 * _jit.COMPILE_GC_THRESHOLD, 5, 5)
    listener.on_start(_compile_event("stabsim.maps._gd_kernels"))
    assert gc.get_threshold() == (10 * _jit.COMPILE_GC_THRESHOLD, 5, 5)
    listener.on_end(None)
    gc.set_threshold(700, 10, 10)
    gc.disable()
    listener.on_start(_compile_event("stabsim.maps._gd_kernels"))
    assert gc.get_threshold() == (700, 10, 10) and not gc.isenabled()
    listener.on_end(None)
    assert gc.get_threshold() == (700, 10, 10) and not gc.isenabled()


def test_the_collectors_threshold_is_set_back_after_a_compilation_that_fails(gc_threshold):
    # Numba ends a compile event when the compilation raises, too
    gc = gc_threshold
    gc.set_threshold(700, 10, 10)

    @_jit.jit
    def fails_to_type(x):
        return x.no_such_attribute

    fails_to_type.py_func.__module__ = "stabsim.tests_probe"
    during = []

    class Probe(numba.core.event.Listener):  # registered after stabsim's, so it sees its work
        def on_start(self, ev):
            during.append(gc.get_threshold())

        def on_end(self, ev):
            pass

    with numba.core.event.install_listener("numba:compile", Probe()):
        with pytest.raises(numba.core.errors.TypingError):
            fails_to_type(1.0)
    assert during == [(_jit.COMPILE_GC_THRESHOLD, 10, 10)]
    assert gc.get_threshold() == (700, 10, 10)


def _compiles_of(function_name):
    names = []

    class Seen(numba.core.event.Listener):
        def on_start(self, ev):
            names.append(ev.data["dispatcher"].py_func.__name__)

        def on_end(self, ev):
            pass

    return names, Seen()


def test_a_helper_is_compiled_once_for_callers_that_differ_only_in_entry_points():
    # a kernel with a Python entry point (jit), a helper without one (inline) and a kernel
    # without one (kernel_only) call the same helper with the same types: one compilation
    @register_jitable
    def shared_helper(x):
        return 2.0 * x

    @_jit.inline
    def inline_caller(x):
        return shared_helper(x) + 1.0

    @_jit.jit(kernel_only=True)
    def kernel_only_caller(x):
        return shared_helper(x) - 1.0

    def entry(x):
        return shared_helper(x) + inline_caller(x) + kernel_only_caller(x)

    kernel = numba.njit(**dict(_jit.JIT_FLAGS, cache=False))(entry)  # as stabsim's kernels
    names, listener = _compiles_of("shared_helper")
    with numba.core.event.install_listener("numba:compile", listener):
        assert kernel(1.5) == 3.0 + 4.0 + 2.0
    assert names.count("shared_helper") == 1


def test_a_helper_is_still_compiled_apart_for_callers_it_inherits_different_options_from():
    # fastmath is inherited by the implementation: a fastmath caller gets its own
    @register_jitable
    def inheriting_helper(x):
        return x * x

    def plain(x):
        return inheriting_helper(x)

    def fast(x):
        return inheriting_helper(x)

    names, listener = _compiles_of("inheriting_helper")
    with numba.core.event.install_listener("numba:compile", listener):
        assert numba.njit(cache=False)(plain)(3.0) == 9.0
        assert numba.njit(cache=False, fastmath=True)(fast)(3.0) == 9.0
    assert names.count("inheriting_helper") == 2


@pytest.fixture
def stabsim_compiling():
    """Run the body as if a stabsim function were being compiled (STABSIM_COMPILES)."""
    _jit.STABSIM_COMPILES.stabsim.append(True)
    yield
    _jit.STABSIM_COMPILES.stabsim.pop()


def _array_rules_for_add(monkeypatch):
    """NumPy's typing template of ``+`` for arrays, and the loop searches it makes."""
    import operator

    from numba.core.typing import npydecl

    searches = []
    search = npydecl.ufunc_find_matching_loop
    monkeypatch.setattr(npydecl, "ufunc_find_matching_loop",
                        lambda *args: searches.append(args) or search(*args))
    (rules,) = [cls for cls in npydecl.NumpyRulesArrayOperator.__subclasses__()
                if getattr(cls, "key", None) is operator.add]
    return rules(cpu_target.typing_context), searches


def test_numpys_rules_turn_scalars_down_as_before_and_still_type_arrays(monkeypatch):
    # scalars get None whoever compiles (so typing goes on to the scalar templates); a
    # user's compilation still searches NumPy's loops first, as Numba does
    rules, searches = _array_rules_for_add(monkeypatch)
    f64, optional = numba.float64, numba.types.Optional(numba.float64)
    assert rules.generic((f64, f64), {}) is None
    assert rules.generic((optional, numba.int64), {}) is None
    assert len(searches) == 2
    vector = numba.float64[::1]
    assert rules.generic((vector, f64), {}).return_type == vector


def test_numpys_rules_turn_scalars_down_before_searching_while_stabsim_compiles(
        monkeypatch, stabsim_compiling):
    rules, searches = _array_rules_for_add(monkeypatch)
    f64, vector = numba.float64, numba.float64[::1]
    assert rules.generic((f64, f64), {}) is None
    assert rules.generic((numba.types.Optional(f64), numba.int64), {}) is None
    assert searches == []
    assert rules.generic((vector, f64), {}).return_type == vector
    assert rules.generic((numba.types.Optional(vector), f64), {}).return_type == vector
    assert len(searches) == 2


def _meminfos_and_instructions(typ):
    """The meminfos Numba's runtime finds in an argument of type ``typ``, each as the path of
    member indices it was taken out by, and the number of instructions written to find them."""
    from llvmlite import ir

    # a copy of the context: the first read of ``nrt`` is cached on the object read, and
    # the copies Numba compiles with would inherit it from the original
    context = cpu_target.target_context.subtarget(enable_nrt=True)
    assert "nrt" not in vars(cpu_target.target_context)
    value_type = context.get_value_type(typ)
    function = ir.Function(ir.Module(), ir.FunctionType(ir.VoidType(), [value_type]), "f")
    builder = ir.IRBuilder(function.append_basic_block())
    found = context.nrt.get_meminfos(builder, typ, function.args[0])

    def path(value):
        if isinstance(value, ir.Argument):
            return ()
        if value.opname == "select":  # an optional's data, where it is valid
            return path(value.operands[1]) + ("if valid",)
        assert value.opname == "extractvalue"
        return path(value.operands[0]) + tuple(value.indices)

    return [(str(t), path(m)) for t, m in found], len(builder.block.instructions)


def test_reference_counts_find_the_same_meminfos_taking_out_only_members_that_hold_them(
        stabsim_compiling):
    # stabsim's compilations find the meminfos Numba finds, in Numba's order, by taking out
    # only the members on their paths: an array's meminfo is its member 0
    array, matrix = numba.float64[::1], numba.int64[:, ::1]
    record = numba.types.Tuple((array, numba.int64, numba.types.UniTuple(matrix, 2),
                                numba.types.Optional(array)))
    ours, written = _meminfos_and_instructions(record)
    _jit.STABSIM_COMPILES.stabsim.append(False)  # a user's function: Numba's own search
    try:
        numbas, numba_written = _meminfos_and_instructions(record)
    finally:
        _jit.STABSIM_COMPILES.stabsim.pop()
    assert ours == numbas
    assert [p for _, p in ours][:3] == [(0, 0), (2, 0, 0), (2, 1, 0)]
    assert written < numba_written
    assert _meminfos_and_instructions(numba.types.UniTuple(numba.float64, 3)) == ([], 0)


def _post_processed(function, stabsim, emit_dels=False, **flag_values):
    """``function``'s IR after post-processing, with the compiler flags ``flag_values``, as
    if stabsim's code were compiled (``stabsim``) or a user's."""
    from numba.core import compiler, postproc, targetconfig

    function_ir = compiler.run_frontend(function)
    flags = compiler.Flags()
    for name, value in flag_values.items():
        setattr(flags, name, value)
    _jit.STABSIM_COMPILES.stabsim.append(stabsim)
    try:
        with targetconfig.ConfigStack().enter(flags):
            postproc.PostProcessor(function_ir).run(emit_dels=emit_dels)
    finally:
        _jit.STABSIM_COMPILES.stabsim.pop()
    return function_ir


def _with_a_loop(x):
    total = 0.0
    for i in range(3):
        if x > i:
            total += x
    return total


def _a_generator(x):
    yield x


def test_post_processing_leaves_unread_analyses_only_to_stabsims_nopython_code():
    analyses = {"cfg", "usedefs", "livemap", "deadmaps"}
    ours = _post_processed(_with_a_loop, stabsim=True)
    assert ours.block_entry_vars == {}
    assert not analyses & set(vars(ours.variable_lifetime))
    for function_ir in (_post_processed(_with_a_loop, stabsim=False),
                        _post_processed(_with_a_loop, stabsim=True, force_pyobject=True),
                        _post_processed(_with_a_loop, stabsim=True, enable_pyobject=True),
                        _post_processed(_a_generator, stabsim=True)):
        assert set(function_ir.block_entry_vars) == set(function_ir.blocks.values())
        assert analyses <= set(vars(function_ir.variable_lifetime))


def test_post_processing_gives_the_same_ir_and_analyses_when_read():
    # the same dels, and the analyses read later are those Numba computed at once
    ours = _post_processed(_with_a_loop, stabsim=True, emit_dels=True)
    numbas = _post_processed(_with_a_loop, stabsim=False, emit_dels=True)
    assert "del " in numbas.dump_to_string()
    assert ours.dump_to_string() == numbas.dump_to_string()
    for name in ("livemap", "deadmaps"):
        mine, theirs = (getattr(f.variable_lifetime, name) for f in (ours, numbas))
        assert str(mine) == str(theirs)
    assert ours.variable_lifetime.usedefs == numbas.variable_lifetime.usedefs


def _counting_template_applies(monkeypatch):
    """How many times a typing template has been applied (all of Numba's template kinds)."""
    from numba.core.typing import templates

    applied = []
    for kind in (templates.AbstractTemplate, templates.ConcreteTemplate,
                 templates.CallableTemplate):
        apply = kind.__dict__["apply"]
        monkeypatch.setattr(kind, "apply",
                            lambda self, args, kws, apply=apply: applied.append(self)
                            or apply(self, args, kws))
    return applied


def _typed(function, *args):
    """The signature of ``function`` on ``args`` from its function type's templates."""
    context = cpu_target.typing_context
    context.refresh()
    return context._lookup_global(function).get_call_type(context, args, {})


def test_a_call_is_typed_again_by_the_template_that_typed_it(monkeypatch, stabsim_compiling):
    # the second time only the template that answered runs, and answers the same
    import operator

    applied = _counting_template_applies(monkeypatch)
    # types no other test types, so that the first typing is a search
    array = numba.types.Array(numba.uint16, 3, "F", readonly=True)
    index = numba.types.UniTuple(numba.uint8, 3)
    first = _typed(operator.getitem, array, index)
    searched = len(applied)
    again = _typed(operator.getitem, array, index)
    assert again == first and again.return_type == numba.uint16
    assert searched > 1 and len(applied) == searched + 1


def test_typing_by_the_remembered_template_gives_numbas_signatures(stabsim_compiling):
    import math
    import operator

    vector, matrix = numba.float64[::1], numba.float64[:, ::1]
    calls = [(operator.getitem, vector, numba.int64), (operator.add, numba.float64, numba.int64),
             (operator.getitem, matrix, numba.types.UniTuple(numba.int64, 2)),
             (operator.mul, vector, numba.float64), (math.sqrt, numba.float64),
             (operator.lt, numba.int64, numba.float64)]
    ours = [[_typed(*call) for call in calls] for _ in range(2)]
    _jit.STABSIM_COMPILES.stabsim.append(False)  # Numba's own search
    try:
        numbas = [_typed(*call) for call in calls]
    finally:
        _jit.STABSIM_COMPILES.stabsim.pop()
    assert ours[0] == ours[1] == numbas


def test_a_users_call_is_typed_by_numbas_search_every_time(monkeypatch):
    import operator

    applied = _counting_template_applies(monkeypatch)
    _typed(operator.getitem, numba.float64[:], numba.int64)
    searched = len(applied)
    _typed(operator.getitem, numba.float64[:], numba.int64)
    assert len(applied) == 2 * searched > 2


def test_where_the_remembered_template_no_longer_answers_numbas_search_does(
        monkeypatch, stabsim_compiling):
    # and where nothing answers, Numba's error is raised
    import operator

    vector = numba.float64[::1]
    numbas = _typed(operator.getitem, vector, numba.int64)
    applied = _counting_template_applies(monkeypatch)
    answering = []

    def turned_down(self, args, kws):
        answering.append(type(self))
        return None

    template = type(_typed(operator.getitem, vector, numba.int64) and applied[-1])
    monkeypatch.setattr(template, "apply", turned_down)
    with pytest.raises(numba.TypingError):
        _typed(operator.getitem, vector, numba.int64)
    assert answering[:2] == [template, template]  # remembered, then again in Numba's search
    monkeypatch.undo()
    assert _typed(operator.getitem, vector, numba.int64) == numbas


_SAME_MACHINE_CODE = '''
import re
import numba
import numpy as np
import stabsim._jit  # noqa: F401 (its patches)
from numba.core import lowering
from numba.extending import register_jitable

# stabsim's code borrows its arguments' references, which changes the instructions on
# purpose (test_stabsim_code_takes_no_reference_of_its_own_to_its_arguments): Numba's way here
lowering.Lower.lower_assign = lowering.Lower.lower_assign.numbas
lowering.Lower.delvar = lowering.Lower.delvar.numbas


@register_jitable
def helper(v, k):
    return v[k] * v[k] if k < v.shape[0] else -1.0


def kernel(a, b, pair):
    best = 0.0
    for i in range(a.shape[0]):
        x = a[i] * b[i] + pair[0] - helper(b, i + 1)
        if x > best and not np.isnan(x):
            best = x
    tail = a[1:].reshape((a.shape[0] - 1, 1))
    work = np.empty(3)
    work[:] = best
    return best + tail.sum() + np.sqrt(abs(best)) + work[2] ** 2


def machine_code(module):
    function = type(kernel)(kernel.__code__, kernel.__globals__, "kernel")
    function.__module__ = module
    compiled = numba.njit(function)
    compiled(np.linspace(0.0, 1.0, 5), np.ones(5), (1.0, 2.0))
    text = compiled.inspect_asm(compiled.signatures[0])
    # symbol names hold the module's name; sizes of the strings that hold them vary with it
    text = re.sub(r"_ZN[\\w$.]+|\\.L\\w+|cpython\\.[\\w$.]+", "SYMBOL", text)
    return [line for line in text.splitlines()
            if line.strip() and not line.strip().startswith((".file", ".ident", ".size", "#"))]


stabsims, users = machine_code("stabsim.kernels1"), machine_code("userpkg.kernels1")
print(len(stabsims), stabsims == users)
'''


def test_the_patches_that_spare_numba_work_leave_the_machine_code_as_it_was(tmp_path):
    # one function compiled as stabsim's (with the patches of _jit that act on stabsim's
    # code and spare Numba work) and as a user's (without): the same instructions, at the
    # level NUMBA_OPT sets for both. Dropping one meminfo from the reference counts, for one,
    # changes them.
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path), NUMBA_OPT="3")
    out = subprocess.run([sys.executable, "-c", _SAME_MACHINE_CODE], capture_output=True,
                         text=True, env=env, check=True).stdout.split()
    assert int(out[0]) > 500 and out[1] == "True"


def test_numbas_messages_are_plain_only_while_stabsim_code_compiles():
    # Numba marks its messages up for the terminal only where colorama is installed
    pytest.importorskip("colorama")
    from numba.core import errors

    scheme = errors.HighlightColorScheme()
    marked = scheme.errmsg("a template turned the arguments down")
    assert marked != "a template turned the arguments down"
    assert "a template turned the arguments down" in marked
    for stabsim, expected in ((True, "a template turned the arguments down"),
                              (False, marked)):  # False: a user's function inside a kernel
        _jit.STABSIM_COMPILES.stabsim.append(stabsim)
        try:
            assert scheme.errmsg("a template turned the arguments down") == expected
        finally:
            _jit.STABSIM_COMPILES.stabsim.pop()
    assert scheme.errmsg("a template turned the arguments down") == marked


_OWNERSHIP = """
import numba
import numpy as np

@numba.njit
def total(a):
    return a.sum()

@numba.njit
def through(a):  # the argument itself returned: the caller's reference plus a new one
    return a

@numba.njit
def in_tuple(a, b):
    return (a, b, total(a))

@numba.njit
def renamed(a, flag):
    b = a
    if flag:
        b = np.zeros(3)
    return b

@numba.njit
def rebound(a):
    a = a + 1.0
    return a

@numba.njit
def doubled(a, n):  # the argument through a loop's merge into the returned value
    for _ in range(n):
        a = a * 2.0
    return a

@numba.njit
def looped(a, n):
    s = 0.0
    for _ in range(n):
        s += total(a)
    return s

@numba.njit
def first_of(pair):
    x, y = pair
    return x
"""


def _ownership_cases(module_name):
    """The functions of ``_OWNERSHIP`` compiled as functions of ``module_name``."""
    namespace = {"__name__": module_name}
    exec(_OWNERSHIP, namespace)
    return SimpleNamespace(**namespace)


@pytest.mark.parametrize("module_name", ["stabsim.borrowing_probe", "outside_probe"])
def test_arguments_keep_their_references_whoever_compiles_them(module_name):
    # stabsim's code takes its arguments as the caller's references (no reference of their
    # own, _arguments_borrowed): every way an argument's value leaves the function must still
    # take one, or the array would be released while Python holds it. Each case runs 1,000
    # times: the input's Python reference count and the runtime's count of live memory infos
    # come back to where they were (one reference taken and not given back, or given back
    # twice, would move them by 1,000), and every value is right
    from numba.core.runtime import _nrt_python, rtsys

    f = _ownership_cases(module_name)
    a = np.arange(3.0)
    other = np.ones(3)
    references = sys.getrefcount(a)

    def live():
        stats = rtsys.get_allocation_stats()
        return stats.mi_alloc - stats.mi_free

    counting = _nrt_python.memsys_stats_enabled()
    _nrt_python.memsys_enable_stats()
    try:
        for run in range(2):  # the first compiles, the second counts
            before = live()
            for _ in range(1000):
                assert f.through(a) is a
                x, y, s = f.in_tuple(a, other)
                assert x is a and y is other and s == 3.0
                assert f.renamed(a, False) is a and not f.renamed(a, True).any()
                np.testing.assert_array_equal(f.rebound(a), [1.0, 2.0, 3.0])
                assert f.doubled(a, 0) is a
                np.testing.assert_array_equal(f.doubled(a, 3), [0.0, 8.0, 16.0])
                assert f.looped(a, 5) == 15.0
                assert f.first_of((a, other)) is a
                del x, y
            if run:
                assert sys.getrefcount(a) == references
                assert live() == before
    finally:
        if not counting:
            _nrt_python.memsys_disable_stats()
    np.testing.assert_array_equal(a, [0.0, 1.0, 2.0])


def _reference_updates(function):
    """Calls of the runtime's reference-count updates in ``function``'s optimised code."""
    (code,) = function.inspect_llvm().values()
    body = code.split("define ", 2)[1]
    return body.count("@NRT_incref") + body.count("@NRT_decref")


def test_stabsim_code_takes_no_reference_of_its_own_to_its_arguments():
    # looped(a, n) calls total(a) n times: outside stabsim it takes a reference to a on entry
    # and gives it back on return; stabsim's code, which borrows the caller's, updates none
    assert getattr(_jit.lowering.Lower.lower_assign, "borrows_arguments", False)
    ours = _ownership_cases("stabsim.borrowing_probe").looped
    theirs = _ownership_cases("outside_probe").looped
    a = np.arange(3.0)
    assert ours(a, 2) == theirs(a, 2) == 6.0
    assert _reference_updates(theirs) > 0
    assert _reference_updates(ours) == 0
