"""Peer for the round-trip cases of bench/families/core.mjs: how long a caller waits for the device
to answer. "item": read one float32 from a device tensor (torch x.item()); "sync": an empty
torch.cuda.synchronize(). GPU only: on the CPU PyTorch has no queue to wait for.
Prints one JSON line: {library: {"label": ..., "medianMs": ...} | {"skipped": reason}}."""
import json
import sys

from common import median_ms

args = json.loads(sys.argv[1])
op, device = args["op"], args.get("device", "cpu")
results = {}
try:
    import torch

    if not device.startswith("cuda") or not torch.cuda.is_available():
        raise ImportError("a CUDA device is needed (PyTorch runs CPU ops synchronously)")
    x = torch.zeros(1, device="cuda")
    fn = (lambda: x.item()) if op == "item" else torch.cuda.synchronize
    results["torch"] = {"label": f"torch {torch.__version__} ({'x.item()' if op == 'item' else 'cuda.synchronize()'})",
                        "medianMs": median_ms(fn, runs=201, warmup=20)}
except ImportError as e:
    results["torch"] = {"skipped": f"PyTorch unavailable: {e}"}
print(json.dumps(results))
