"""One module per workload of the suite; each exposes NAME, SIZE_NAME, DEFAULT_SIZES,
QUICK_SIZES, TARGET_SIZE (where the issue sets targets) and ``run(size, ctx) -> [Group]``."""
