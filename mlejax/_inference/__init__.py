"""The implementation of :mod:`mlejax.inference`, one module per concept (the public names
are :mod:`mlejax.inference`'s). Importing this package imports none of its modules: each
module imports the ones below it, so they form a chain without a cycle.

Layers, bottom to top: ``common`` (taking a result apart, refit settings); ``robust``
(sandwich covariance, the covariance ``cov=`` names); ``intervals`` (the interval result);
``profile`` (profile-likelihood search and curve); ``confint`` (Wald or profile); ``delta``;
``lrt``; ``bootstrap``.
"""
