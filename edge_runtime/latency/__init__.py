"""Latency measurement for ``edgert bench``: cold start in fresh processes, warm latency
percentiles, batch throughput, peak memory. Pure runtime code: no scikit-learn here."""
