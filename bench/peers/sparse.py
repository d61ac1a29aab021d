"""Peers for bench/families/sparse.mjs: C = A @ A (A @ A.T for rectangular A) on the same Matrix
Market file, float64, int32 indices. CPU: SciPy's csr_matmat (single-threaded SMMP; it drops exact-zero
sums and leaves columns unsorted, has_sorted_indices False, so its nnz(C) may be smaller than sparq's
structural one), timed as users call it (`A @ B`) and like for like with sparq's sorted output
(`A @ B` then `sort_indices()`). GPU: CuPy's
cupyx.scipy.sparse (cuSPARSE SpGEMM) when CuPy is importable. On Debian SciPy comes from
`apt-get install python3-scipy`. Prints one JSON line: {library: {"label", "medianMs"} | {"skipped": reason}}."""
import json
import sys

from common import median_ms

args = json.loads(sys.argv[1])
device = args.get("device", "cpu")
results = {}

try:
    import numpy as np
    import scipy
    import scipy.io
    import scipy.sparse

    dt = np.float64 if args.get("dtype") == "float64" else np.float32
    if "generate" in args:  # the compression stress case: A rows x w with every row full, B w x w full
        n, w = args["generate"]["rows"], args["generate"]["width"]
        cols = np.tile(np.arange(w, dtype=np.int32), n)
        vals = 1 + ((np.repeat(np.arange(n), w) + cols) % 7) / 8
        a = scipy.sparse.csr_matrix((vals.astype(dt), cols, np.arange(0, (n + 1) * w, w, dtype=np.int64)), shape=(n, w))
        b = scipy.sparse.csr_matrix(np.full((w, w), 0.5, dtype=dt))
    else:
        a = scipy.sparse.csr_matrix(scipy.io.mmread(args["file"]), dtype=dt)
        a.sum_duplicates()
        b = a.T.tocsr() if args.get("transpose") else a
    if device == "cpu":
        results["scipy"] = {"label": f"scipy {scipy.__version__}", "medianMs": median_ms(lambda: a @ b, runs=15, warmup=3)}

        def sorted_product():  # like for like with sparq's default sortColumns: true
            c = a @ b
            c.sort_indices()

        results["scipy-sorted"] = {"label": f"scipy {scipy.__version__} @ + sort_indices", "medianMs": median_ms(sorted_product, runs=15, warmup=3)}
    else:
        try:
            import cupy
            import cupyx.scipy.sparse as csp

            da, db = csp.csr_matrix(a), csp.csr_matrix(b)
            sync = cupy.cuda.Device().synchronize
            runs = args.get("runs", 15)
            results["cusparse"] = {"label": f"cupy {cupy.__version__} (cuSPARSE)",
                                   "medianMs": median_ms(lambda: da @ db, runs=runs, warmup=min(3, runs), sync=sync)}
        except ImportError as e:
            results["cusparse"] = {"skipped": f"cupy not importable: {e}"}
        except Exception as e:  # cuSPARSE out of memory and friends: report, do not crash the bench
            results["cusparse"] = {"skipped": f"cupy failed: {type(e).__name__}: {e}"[:200]}
except ImportError as e:
    results["scipy" if device == "cpu" else "cusparse"] = {"skipped": f"scipy not importable: {e} (apt-get install python3-scipy)"}

print(json.dumps(results))
