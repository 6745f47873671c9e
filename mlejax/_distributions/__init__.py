"""The implementation of :mod:`mlejax.distributions`, one module per concept (the public names
are :mod:`mlejax.distributions`'). Importing this package imports none of its modules: each
module imports the ones below it, so they form a chain without a cycle.

Layers, bottom to top: ``family`` (the :class:`Distribution` record) and ``common`` (weighted
summaries, the integer test); ``discrete`` and ``continuous`` (the families, each with its
registry entries); ``registry`` (names, aliases, ``get``); ``fitting`` (``fit_distribution``,
``bootstrap_sampler``); ``compare`` (``compare_distributions``).
"""
