"""Peers for bench/families/core.mjs: the same casts, random fills and zero fills in PyTorch and
NumPy. Prints one JSON line: {library: {"label": ..., "medianMs": ...} | {"skipped": reason}}.
Each run allocates its output, as sparq's ops do."""
import json
import os
import sys

from common import median_ms

args = json.loads(sys.argv[1])
op, n, device = args["op"], int(args["n"]), args.get("device", "cpu")
results = {}

try:
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ImportError("this torch has no CUDA device")
    tdev = "cuda" if device.startswith("cuda") else "cpu"
    torch.set_num_threads(os.cpu_count() or 1)
    sync = torch.cuda.synchronize if tdev == "cuda" else None
    tt = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
          "int8": torch.int8, "int32": torch.int32}
    # "fresh" allocates each output as sparq's ops do; "out=" writes into one preallocated tensor,
    # which isolates the kernel from the allocator (large fresh outputs cost page faults).
    g = torch.Generator(device=tdev).manual_seed(3)
    if op == "cast":
        x = (torch.rand(n, device=tdev) * 200 - 100).to(tt[args["from"]])
        out = torch.empty(n, dtype=tt[args["to"]], device=tdev)
        fresh, into = (lambda: x.to(tt[args["to"]])), (lambda: out.copy_(x))
    elif op == "normal":
        out = torch.empty(n, device=tdev)
        fresh, into = (lambda: torch.randn(n, generator=g, device=tdev)), (lambda: out.normal_(generator=g))
    elif op == "zeros":
        out = torch.empty(n, device=tdev)
        fresh, into = (lambda: torch.zeros(n, device=tdev)), (lambda: out.zero_())
    else:
        raise ValueError(op)
    label = f"torch {torch.__version__} ({tdev}, {torch.get_num_threads()} threads"
    results["torch"] = {"label": label + ")", "medianMs": median_ms(fresh, sync=sync)}
    results["torch out="] = {"label": label + ", out=)", "medianMs": median_ms(into, sync=sync)}
except ImportError as e:
    results["torch"] = {"skipped": f"PyTorch unavailable: {e}"}
    results["torch out="] = {"skipped": f"PyTorch unavailable: {e}"}

try:
    import numpy as np

    if device.startswith("cuda"):
        raise ImportError("NumPy runs on the CPU only")
    nt = {"float32": np.float32, "float16": np.float16, "int8": np.int8, "int32": np.int32}
    rng = np.random.default_rng(3)
    if op == "cast":
        if args["from"] not in nt or args["to"] not in nt:
            raise ImportError("NumPy has no bfloat16")
        x = (rng.random(n, dtype=np.float32) * 200 - 100).astype(nt[args["from"]])
        fn = lambda: x.astype(nt[args["to"]])
    elif op == "normal":
        fn = lambda: rng.standard_normal(n, dtype=np.float32)
    elif op == "zeros":
        fn = lambda: np.full(n, 0, dtype=np.float32)  # np.zeros maps lazily-zeroed pages: nothing written
    results["numpy"] = {"label": f"numpy {np.__version__} (1 thread)", "medianMs": median_ms(fn)}
except ImportError as e:
    results["numpy"] = {"skipped": f"NumPy unavailable: {e}"}

print(json.dumps(results))
