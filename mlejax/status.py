"""Status codes of a fit, one per fit (and per element of a batch), with their messages."""

from __future__ import annotations

import enum

__all__ = ["Status", "message", "messages"]


class Status(enum.IntEnum):
    """Why a fit stopped. Only ``CONVERGED`` means the estimate can be trusted as a maximum.

    A result's ``status`` is an ``int32`` code (one per fit of a batch); ``Status(code)`` names
    it and ``result.message`` explains it.

    Example:
      >>> [s.name for s in mj.Status if s >= 0]
      ['CONVERGED', 'MAX_STEPS', 'NONFINITE', 'LINESEARCH_FAILED', 'SINGULAR_HESSIAN', 'NOT_RUN', 'NONFINITE_HESSIAN', 'NOT_ATTAINED', 'INNER_NOT_CONVERGED', 'INNER_NOT_DEFINITE']
      >>> mj.Status(1).name, mj.Status.CONVERGED == 0
      ('MAX_STEPS', True)
    """

    CONVERGED = 0
    MAX_STEPS = 1
    NONFINITE = 2
    LINESEARCH_FAILED = 3
    SINGULAR_HESSIAN = 4
    NOT_RUN = 5
    NONFINITE_HESSIAN = 6
    NOT_ATTAINED = 7
    INNER_NOT_CONVERGED = 8
    INNER_NOT_DEFINITE = 9
    # Internal: the loop is still iterating. Never present in a finished result.
    RUNNING = -1


_MESSAGES = {
    Status.CONVERGED: "converged: the stopping test was met (gradient zero to the tolerance, "
                      "or for EM no further increase of the log-likelihood)",
    Status.MAX_STEPS: "not converged: max_steps reached before the stopping tests were met; "
                      "raise max_steps, try another method or better starting values (a "
                      "nonlinear regression with Gaussian errors: mj.models.Nonlinear, which "
                      "starts with Levenberg-Marquardt)",
    Status.NONFINITE: "not converged: the log-likelihood or its gradient became non-finite "
                      "(NaN or inf); check the data, the starting values and the constraints",
    Status.LINESEARCH_FAILED: "not converged: no step along the search direction increased the "
                              "log-likelihood while the gradient is not zero; the problem may be "
                              "badly scaled or the log-likelihood not smooth",
    Status.SINGULAR_HESSIAN: "stopped at a point where the Hessian is singular or not negative "
                             "definite: not a strict maximum (a ridge, saddle or non-identified "
                             "parameters); standard errors are NaN",
    Status.NOT_RUN: "not fitted: the run was interrupted before this dataset was reached; "
                    "run again with the same checkpoint= path to resume",
    Status.NONFINITE_HESSIAN: "the second derivatives are not finite (NaN or inf) although the "
                              "log-likelihood and its gradient are: usually inf * 0 in autodiff, "
                              "e.g. cut-points padded with -inf/+inf or a log/sqrt of 0 in an "
                              "unused branch; standard errors are NaN. Fix: keep infinities out "
                              "of the parameter path (pad with large finite values, or jnp.where "
                              "on both branches)",
    Status.NOT_ATTAINED: "the maximum is not attained: the log-likelihood keeps increasing as a "
                         "parameter combination goes to infinity (e.g. perfect separation in "
                         "a binary regression, a variance going to zero); the estimates and "
                         "standard errors are meaningless. Fix: drop or merge the separating "
                         "variables, add a penalty (mj.penalties.l2) or constrain the parameter",
    Status.INNER_NOT_CONVERGED: "not converged: the inner Newton that finds the mode of the random "
                                "effects did not converge at these parameters, so the Laplace "
                                "marginal likelihood is not defined there; raise "
                                "mj.RandomEffects(max_inner=...), start the random effects "
                                "nearer their modes, or check that the joint is smooth in them",
    Status.INNER_NOT_DEFINITE: "the joint log-density is not strictly concave in the random "
                               "effects at their mode (-d2/du2 not positive definite), so the "
                               "Laplace approximation does not exist; check that the joint "
                               "includes the random effects' own distribution log p(u | theta) "
                               "and that every random effect enters it",
    Status.RUNNING: "running",
}


def message(code: int) -> str:
    """The human-readable message of a status code."""
    return _MESSAGES[Status(int(code))]


def messages(status) -> str | list[str]:
    """The message of a status code, or the list of messages of a batch of them."""
    import numpy as np

    codes = np.asarray(status)
    if codes.ndim == 0:
        return message(int(codes))
    return [message(int(c)) for c in codes.ravel()]


class HasStatus:
    """``converged`` and ``message`` read from a result's ``status`` field: one definition
    for every result type (fits, k-means, regressions)."""

    __slots__ = ()

    @property
    def converged(self):
        """True where the fit converged (``status == Status.CONVERGED``)."""
        return self.status == Status.CONVERGED

    @property
    def message(self) -> str | list[str]:
        """The status message (a list of them for a batch)."""
        return messages(self.status)
