"""``python -m benchmarks``: the benchmark suite (the same as ``mlejax bench``)."""

from .suite import main

raise SystemExit(main())
