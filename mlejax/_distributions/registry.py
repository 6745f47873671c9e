"""The registry of built-in distributions: their names, aliases and :func:`get`."""

from __future__ import annotations

from mlejax._distributions.continuous import CONTINUOUS
from mlejax._distributions.discrete import DISCRETE
from mlejax._distributions.family import Distribution

_REGISTRY: dict[str, Distribution] = {d.name: d for d in DISCRETE + CONTINUOUS}

DISTRIBUTIONS: tuple[str, ...] = tuple(_REGISTRY)

_ALIASES = {
    "gaussian": "normal", "norm": "normal", "lognorm": "lognormal", "log_normal": "lognormal",
    "expon": "exponential", "exp": "exponential", "t": "student_t", "student": "student_t",
    "studentt": "student_t", "negbin": "negative_binomial", "nbinom": "negative_binomial",
    "nb": "negative_binomial", "binom": "binomial", "geom": "geometric",
    "weibull_min": "weibull", "vonmises": "von_mises", "mvn": "multivariate_normal",
    "multinormal": "multivariate_normal", "multinoulli": "categorical", "discrete": "categorical",
}


def get(name: str | Distribution) -> Distribution:
    """The registry entry of a distribution name (case-insensitive; common aliases accepted).

    Raises:
      ValueError: for an unknown name, listing the known ones.

    Example:
      >>> mj.distributions.get("Weibull_min").name, mj.distributions.get("gamma").params
      ('weibull', ('shape', 'scale'))
    """
    if isinstance(name, Distribution):
        return name
    if not isinstance(name, str):
        raise ValueError(f"dist must be a distribution name (a string); got {name!r}. Known: "
                         f"{', '.join(DISTRIBUTIONS)}.")
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    key = _ALIASES.get(key, key)
    if key not in _REGISTRY:
        raise ValueError(f"unknown distribution {name!r}; known distributions: "
                         f"{', '.join(DISTRIBUTIONS)} (aliases: {', '.join(sorted(_ALIASES))}).")
    return _REGISTRY[key]
