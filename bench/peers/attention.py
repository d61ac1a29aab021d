"""Peers for bench/families/attention.mjs. CPU: PyTorch softmax(q @ k^T * scale) @ v (what the
issue asks to compare with; PyTorch 1.13 on Debian has no scaled_dot_product_attention); GPU:
torch.nn.functional.scaled_dot_product_attention with the flash backend where this torch has it.
Prints one JSON line: {library: {"label": ..., "medianMs": ...} | {"skipped": reason}}."""
import json
import math
import os
import sys

from common import median_ms

args = json.loads(sys.argv[1])
op, device = args["op"], args.get("device", "cpu")
B, H, Hk, T, D = (int(args[k]) for k in ("B", "H", "Hk", "T", "D"))
results = {}

try:
    import torch

    gpu = device.startswith("cuda")
    if gpu and not torch.cuda.is_available():
        raise ImportError("this torch has no CUDA device")
    tdev = "cuda" if gpu else "cpu"
    torch.set_num_threads(os.cpu_count() or 1)
    dt = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[args["dtype"]]
    g = torch.Generator(device=tdev).manual_seed(0)
    tq = T if op == "prefill" else 1
    q = torch.randn(B, H, tq, D, generator=g, device=tdev, dtype=dt)
    k = torch.randn(B, Hk, T, D, generator=g, device=tdev, dtype=dt)
    v = torch.randn(B, Hk, T, D, generator=g, device=tdev, dtype=dt)
    scale = 1 / math.sqrt(D)
    causal = bool(args.get("causal", False)) and op == "prefill"
    sync = torch.cuda.synchronize if gpu else None
    if gpu:
        import torch.nn.functional as F

        if Hk != H:  # SDPA's flash path wants equal heads in older torch: expand the KV heads
            k = k.repeat_interleave(H // Hk, dim=1)
            v = v.repeat_interleave(H // Hk, dim=1)
        try:
            from torch.nn.attention import SDPBackend, sdpa_kernel

            ctx = lambda: sdpa_kernel(SDPBackend.FLASH_ATTENTION)
        except ImportError:
            ctx = lambda: torch.backends.cuda.sdp_kernel(enable_flash=True, enable_math=False, enable_mem_efficient=False)

        def fn():
            with ctx():
                return F.scaled_dot_product_attention(q, k, v, is_causal=causal)

        label = f"torch {torch.__version__} SDPA flash"
    else:
        if Hk != H:
            k = k.repeat_interleave(H // Hk, dim=1)
            v = v.repeat_interleave(H // Hk, dim=1)
        mask = torch.ones(T, T, dtype=torch.bool).tril() if causal else None

        def fn():
            s = (q @ k.transpose(-1, -2)) * scale
            if mask is not None:
                s = s.masked_fill(~mask, float("-inf"))
            return torch.softmax(s, dim=-1) @ v

        label = f"torch {torch.__version__} softmax(q·kᵀ)·v (cpu, {torch.get_num_threads()} threads)"
    with torch.no_grad():
        results["torch"] = {"label": label, "medianMs": median_ms(fn, runs=7, warmup=2, sync=sync)}
except ImportError as e:
    results["torch"] = {"skipped": f"PyTorch unavailable: {e}"}
except RuntimeError as e:  # e.g. no flash kernel for this GPU/dtype/shape
    results["torch"] = {"skipped": f"PyTorch failed: {str(e).splitlines()[0]}"}

print(json.dumps(results))
