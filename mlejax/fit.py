"""Temporary: the old private names of mlejax.fit, while the modules that used them move to
the layered core (issue 21). Removed once nothing imports it."""
# ruff: noqa
from mlejax._config import Config as _Config
_DEFAULT_MAX_STEPS = {'newton': 500, 'bfgs': 500, 'lbfgs': 1000, 'gradient': 2000}
from mlejax._configure import configure as _prepare, dataset_keys
from mlejax._engine import (best_of as _best_of, starts as _starts, loop_start as _loop_start,
                            loop_advance as _loop_advance, loop_result as _loop_result,
                            loop_init as _loop_init, solve_one as _solve_one, batch_axes)
from mlejax._fit import fit, fit_batch
from mlejax._kernels import (kernel as _kernel, batch_block as _batch_block,
                             fit_batch_concurrently as _fit_batch_concurrently,
                             QUICK_COMPILE_UNKNOWN as _QUICK_COMPILE_UNKNOWN,
                             quick_compile_options)
from mlejax._objective import objective as _objective, solver_setup as _setup
from mlejax._problem import Problem, make_problem as _make_problem
from mlejax._warnings import FitWarning, warn_fits as _warn
from mlejax.result import FitResult
from mlejax import _kernels

def __getattr__(name):
    return getattr(_kernels, name.lstrip("_"))
