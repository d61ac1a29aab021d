"""Runs peer scripts (bench/peers/*.py) on request in one long-lived interpreter, so that PyTorch,
CuPy and SciPy are imported and their GPU contexts made once per benchmark run, not once per case.
Reads one JSON request per line, {"script": "attention.py", "args": {...}}; runs the script as if
started as `python3 script '<args json>'` and answers with the last line the script printed (its
JSON result) or {"error": "..."}. Memory the script's tensors held is given back to the device
before the answer, so a peer does not squeeze the next sparq case."""
import contextlib
import io
import json
import os
import runpy
import sys
import traceback

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
answer = sys.stdout


def release_device_memory():
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
    cupy = sys.modules.get("cupy")
    if cupy is not None:
        cupy.get_default_memory_pool().free_all_blocks()


for line in sys.stdin:
    req = json.loads(line)
    captured = io.StringIO()
    try:
        sys.argv = [req["script"], json.dumps(req["args"])]
        with contextlib.redirect_stdout(captured):
            runpy.run_path(os.path.join(here, req["script"]), run_name="__main__")
        lines = captured.getvalue().strip().splitlines()
        reply = lines[-1] if lines else json.dumps({"error": "the script printed nothing"})
    except BaseException:  # a peer that fails (SystemExit included) must not end the server
        reply = json.dumps({"error": traceback.format_exc().strip().splitlines()[-1]})
    try:
        release_device_memory()
    except Exception:
        pass
    answer.write(reply + "\n")
    answer.flush()
