"""ripkit._numba: lazy kernels and the background warm-up."""
import subprocess
import sys
import threading

from ripkit._numba import lazy_kernel, start_warm_up
from ripkit.rip.trials import rip_trials


def _double(x):
    return 2 * x


def test_lazy_kernel_compiles_on_first_call_and_keeps_the_python_function():
    kernel = lazy_kernel(_double)
    assert kernel.py_func is _double
    assert kernel(3.0) == 6.0


def test_warm_up_thread_finishes():
    thread = start_warm_up()
    thread.join(timeout=120)
    assert not thread.is_alive()


def test_in_process_trials_leave_no_thread_behind():
    before = threading.active_count()
    rip_trials(30, 20, 6, 4, sparsity=(2,), n_samples=20, trials=1, estimators=("percentile",))
    assert threading.active_count() == before


def test_importing_the_rip_cli_does_not_import_numba():
    """numba (~0.2 s) is imported by the kernels' first use or the warm-up thread, off the import path."""
    code = ("import sys; import ripkit.rip.cli, ripkit.rip.bracket, ripkit.rip.exhaustive, ripkit.rip.torch_path; "
            "print('numba' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_warm_up_imports_the_modules_it_is_given():
    code = ("import sys; from ripkit._numba import start_warm_up; "
            "start_warm_up('ripkit.rip._search_kernels').join(); print('ripkit.rip._search_kernels' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True"
