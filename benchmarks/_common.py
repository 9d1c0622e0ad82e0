"""Shared helpers of the benchmark scripts (not part of the edgealex package)."""

import json
import os
import platform
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
if REPO not in sys.path:
    sys.path.insert(0, REPO)


# What the results files say about load: a claim about other jobs belongs in a note written by
# whoever saw them, not in a template; the load averages are recorded next to it.
LOAD_NOTE = ("the figures of merit are ratios measured side by side in one run, so background load, "
             "if any, affects both sides; absolute figures drift with the VM")


def machine():
    """What the figures were measured on: CPU, cores, load, versions."""
    from edgealex.bench.environment import cpu_isa, cpu_model, loadavg, versions

    return {"hostname": platform.node(), "cpu_model": cpu_model(), "cpu_isa": cpu_isa(), "cpu_count": os.cpu_count(),
            "platform": platform.platform(), "loadavg": loadavg(), "versions": versions(),
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def write_results(out_dir, name, data, markdown):
    from edgealex.artifacts import ensure_dir, write_json_atomic, write_text_atomic

    ensure_dir(out_dir)
    json_path = write_json_atomic(os.path.join(out_dir, name + ".json"), data)
    md_path = write_text_atomic(os.path.join(out_dir, name + ".md"), markdown)
    print(f"wrote {json_path} and {md_path}")
    return json_path, md_path


def export_alexnet(work_dir, labels=("ok", "scratch", "stain", "crack", "hole"), dynamic_batch=False):
    """A random-init torchvision-layout AlexNet ONNX in ``work_dir`` (reused when present)."""
    from edgealex.export.onnx import export_onnx

    path = os.path.join(work_dir, "alexnet-dyn.onnx" if dynamic_batch else "alexnet.onnx")
    if not os.path.isfile(path):
        print("exporting AlexNet (random init) to", path, flush=True)
        export_onnx(path, arch="alexnet", labels=list(labels), seed=0, parity_samples=1, dynamic_batch=dynamic_batch)
    return path


def dumps(obj):
    return json.dumps(obj, indent=2, default=str)
