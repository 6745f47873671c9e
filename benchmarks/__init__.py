"""mlejax's benchmarks: the suite of issue 6 (``python -m benchmarks`` or ``mlejax bench``)
and the standalone scripts it reuses (bench_batch_logistic.py, bench_gmm.py, nist_lre.py,
bench_inference.py). See suite.py for the workloads and RESULTS.md for measured figures.
"""
