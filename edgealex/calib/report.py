"""The calibration report: ``report.json`` (everything) and ``report.md`` (a readable summary)."""

import os

from edgealex.artifacts import environment_summary, write_json_atomic, write_text_atomic
from edgealex.calib.cache import encode_scale

MODEL_NAMES = {"fp32": "FP32 (reference)", "int8_qdq": "INT8 Q/DQ (TensorRT-compatible)",
               "int8_ort": "INT8 ORT-native (CPU only)"}


def _pct(value):
    return "-" if value is None else f"{value:.2%}"


def _classes(image_set):
    return {("" if k is None else k): v for k, v in sorted(image_set.class_counts().items(), key=lambda kv: kv[0] or "")}


def build_report(result, info, model_path, model_sha256, calib_set, held, ranges, scales, left_out,
                 qdq_check, ort_check, provenance, holdout_manifest):
    """The report as a dict (see :func:`write_reports`)."""
    tensors = []
    ordered = list(scales) + sorted(set(ranges) - set(scales))  # graph order, as in the caches
    for name in ordered:
        low, high = ranges[name]
        entry = {"name": name, "rmin": low, "rmax": high, "amax": max(abs(low), abs(high))}
        if name in scales:
            scale, source = scales[name]
            entry.update(scale=scale, scale_hex=encode_scale(scale), scale_source=source,
                         amax_used=scale * 127.0)
        tensors.append(entry)
    name = os.path.basename  # relative to the calibration folder (it is built in a staging folder)
    files = {"qdq_onnx": name(result.qdq_onnx), "ort_int8_onnx": name(result.ort_int8_onnx) if result.ort_int8_onnx
             else None, "caches": {str(k): name(v) for k, v in sorted(result.caches.items())},
             "ranges_json": name(result.ranges_json), "manifest": name(result.manifest_path),
             "paths_relative_to": "the folder of this file"}
    sizes = {"fp32_bytes": os.path.getsize(model_path), "qdq_bytes": os.path.getsize(result.qdq_onnx)}
    if result.ort_int8_onnx:
        sizes["ort_int8_bytes"] = os.path.getsize(result.ort_int8_onnx)
    return {
        "artifact": "calibration-report",
        "schema": 1,
        "model": {"path": os.path.abspath(model_path), "sha256": model_sha256, "arch": info.arch,
                  "labels": list(info.labels), "input_name": info.input_name, "batch": info.batch,
                  "preprocess": info.preprocess.to_dict(), "preprocess_from_defaults": bool(info.from_defaults)},
        "method": result.method,
        "method_settings": provenance["method_settings"],
        "onnxruntime_version": provenance["onnxruntime_version"],
        "images": {"root": os.path.abspath(calib_set.root), "manifest_sha256": result.images_manifest_sha256,
                   "sampled": len(calib_set), "classes": _classes(calib_set),
                   "read": result.stats.to_dict(calib_set.relpath)},
        "holdout": {"root": os.path.abspath(held.root), "manifest_sha256": holdout_manifest["manifest_sha256"],
                    "listed": len(held), "classes": _classes(held)},
        "gate": result.gate.to_dict(held.relpath),
        "outputs": files,
        "sizes": sizes,
        "qdq_check": qdq_check,
        "ort_int8_check": ort_check,
        "cache_tensors": len(scales),
        "left_out_of_cache": list(left_out),
        "tensors": tensors,
        "timings_s": dict(result.timings_s),
        "seconds": round(result.seconds, 3),
        "environment": environment_summary(),
    }


def render_markdown(report):
    """A short Markdown summary of :func:`build_report`'s dict."""
    gate, images, model = report["gate"], report["images"], report["model"]
    read = images["read"]
    name = os.path.basename
    lines = [
        f"# INT8 calibration of `{name(model['path'])}`",
        "",
        f"- Model sha256 `{model['sha256'][:16]}…`, {model['arch']}, {len(model['labels'])} classes, "
        f"preprocessing {'ImageNet DEFAULTS (no metadata)' if model['preprocess_from_defaults'] else 'from the model metadata'}",
        f"- Method **{report['method']}** (ONNX Runtime {report['onnxruntime_version']} calibrator, "
        + ", ".join(f"{k}={v}" for k, v in report["method_settings"].items()) + ")",
        f"- Calibration images: **{read['used']} used** of {images['sampled']} sampled from `{images['root']}` "
        f"(manifest `{images['manifest_sha256'][:16]}…`); {read['skipped']} skipped, {read['upscaled']} upscaled, "
        "converted: " + (", ".join(f"{k} {v}" for k, v in read["converted"].items()) or "none"),
        f"- Time: {report['seconds']:.1f} s (" + ", ".join(f"{k} {v:.1f} s" for k, v in report["timings_s"].items()) + ")",
        "",
        "## Accuracy gate (ONNX Runtime CPU, held-out images)",
        "",
        f"{gate['images']} held-out images from `{report['holdout']['root']}`; threshold: top-1 agreement "
        f">= {gate['min_agreement']:.1%}. **{'PASSED' if gate['passed'] else 'FAILED'}**",
        "",
        "| model | top-1 agreement with FP32 | top-1 accuracy | mean abs logit diff |",
        "|---|---|---|---|",
    ]
    for key in ("fp32", "int8_qdq", "int8_ort"):
        if key != "fp32" and key not in gate["agreement"]:
            continue
        agree = "-" if key == "fp32" else "{} ({}/{})".format(_pct(gate["agreement"][key]), gate["agree_counts"][key], gate["images"])
        diff = "-" if key == "fp32" else f"{gate['mean_abs_logit_diff'][key]:.4g}"
        lines.append(f"| {MODEL_NAMES[key]} | {agree} | {_pct(gate['accuracy'].get(key))} | {diff} |")
    if gate["labeled_images"] == 0:
        lines += ["", "No accuracy: the held-out images have no class folders named like the model's labels."]
    lines += ["", "## Outputs", ""]
    outputs, sizes = report["outputs"], report["sizes"]
    check = report["qdq_check"]
    weights = (f"{check['int8_weights']} weight tensors stored as INT8 initializers"
               if check.get("int8_weights") else "FP32 weights with Q/DQ pairs")
    lines.append(f"- `{name(outputs['qdq_onnx'])}`: Q/DQ ONNX for TensorRT explicit INT8 (TensorRT >= "
                 f"{check.get('min_tensorrt', '8.0')} GPU; TensorRT 8.x and DLA take the caches below) and ORT CPU; {weights}; "
                 f"{report['qdq_check']['quantize_nodes']} QuantizeLinear, {report['qdq_check']['zero_points']} zero-points checked, "
                 f"{len(report['qdq_check']['nonzero_zero_points'])} non-zero; {report['qdq_check']['relu_nodes']} Relu kept; "
                 f"{sizes['qdq_bytes'] / 1e6:.1f} MB")
    if outputs["ort_int8_onnx"]:
        lines.append(f"- `{name(outputs['ort_int8_onnx'])}`: ORT-native INT8 for CPU only (not for TensorRT); "
                     f"{sizes['ort_int8_bytes'] / 1e6:.1f} MB, {sizes['fp32_bytes'] / sizes['ort_int8_bytes']:.2f}x smaller than FP32")
    for number, path in outputs["caches"].items():
        lines.append(f"- `{name(path)}`: TensorRT calibration cache `TRT-{number}-EntropyCalibration2`, "
                     f"{report['cache_tensors']} tensors (implicit INT8 / DLA on TensorRT 8.x)")
    lines.append(f"- `{name(outputs['ranges_json'])}`: ONNX Runtime ranges (`quantize_static(calibration_cache_path=...)`)")
    if report["left_out_of_cache"]:
        lines.append(f"- Left out of the caches (zero range): {', '.join(report['left_out_of_cache'])}")
    if read["skipped_files"]:
        lines += ["", "## Skipped images", "", "| file | reason |", "|---|---|"]
        lines += [f"| `{s['path']}` | {s['reason']} |" for s in read["skipped_files"]]
        if read["skipped"] > len(read["skipped_files"]):
            lines.append(f"| … | {read['skipped'] - len(read['skipped_files'])} more |")
    lines += ["", "## Per-tensor ranges", "",
              "| tensor | min | max | scale (cache) | hex | from |", "|---|---|---|---|---|---|"]
    for t in report["tensors"]:
        lines.append("| `{}` | {:.5g} | {:.5g} | {} | {} | {} |".format(
            t["name"], t["rmin"], t["rmax"], f"{t['scale']:.6g}" if "scale" in t else "-",
            f"`{t['scale_hex']}`" if "scale_hex" in t else "-", t.get("scale_source", "left out")))
    lines += ["", "Scale = amax/127; `from qdq` = the Q/DQ model's scale for that tensor (same ranges), "
              "`from range` = amax/127 of the calibrated range.", ""]
    return "\n".join(lines)


def write_reports(result, **parts):
    """Write ``report.json`` and ``report.md`` for a calibration."""
    report = build_report(result, **parts)
    write_json_atomic(result.report_json, report)
    write_text_atomic(result.report_md, render_markdown(report))
    return report
