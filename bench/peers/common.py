"""Shared by the peer scripts: the median wall time of fn() over warmed runs."""
import statistics
import time


def median_ms(fn, runs=15, warmup=3, sync=None):
    """Median milliseconds of `runs` calls after `warmup` untimed ones; `sync` (e.g.
    torch.cuda.synchronize) brackets each timed call so that queued GPU work is counted."""
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(runs):
        if sync:
            sync()
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        ts.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ts)
