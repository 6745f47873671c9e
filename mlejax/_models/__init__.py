"""The implementation of :mod:`mlejax.models`, one module per concept (the public names are
:mod:`mlejax.models`'). Importing this package imports none of its modules: each module
imports the ones below it, so they form a chain without a cycle.

Layers, bottom to top: ``common`` (where in a batch a check failed, the weighted least-squares
start, the exact-fit check) and ``levenberg_marquardt`` (the least-squares solver pieces);
``base`` (``Model``, ``RegressionResult``, the design matrix); ``glm`` (the generalised linear
models); ``robust`` (Student-t regression); ``nonlinear``.
"""
