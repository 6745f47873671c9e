"""Solver families; each supplies ``init`` and ``step`` for the driver loop in ``_loop``."""

from mlejax.solvers.gradient import MinibatchGradient, gradient
from mlejax.solvers.newton import Newton
from mlejax.solvers.quasi_newton import bfgs, lbfgs

METHODS = ("newton", "bfgs", "lbfgs", "gradient")

__all__ = ["METHODS", "MinibatchGradient", "Newton", "bfgs", "gradient", "lbfgs"]
