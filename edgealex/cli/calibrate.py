"""edgealex calibrate: INT8 from an image folder -> Q/DQ ONNX, TensorRT caches, report, accuracy gate."""

from pathlib import Path
from typing import List, Optional

import typer

from edgealex.cli._common import echo, emit_json, user_errors

from typing_extensions import Annotated  # typing.Annotated needs Python 3.9; JetPack 5 has 3.8


@user_errors
def calibrate(
    model: Annotated[Path, typer.Argument(help="FP32 ONNX from `edgealex export` (its metadata holds the preprocessing).")],
    images: Annotated[Path, typer.Option("--images", "-i", help="Image folder (recursive; class sub-folders allowed) or an image manifest .json.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (calibration.json, INT8 ONNX, caches, report).")] = Path("calib/out"),
    count: Annotated[Optional[int], typer.Option(help="Calibration images, sampled evenly over the classes (default: all; min 8).")] = None,
    method: Annotated[str, typer.Option(help="entropy (default), minmax or percentile: ONNX Runtime's calibrators.")] = "entropy",
    holdout: Annotated[Optional[Path], typer.Option(help="Held-out folder or manifest for the accuracy gate (default: 20% of --images, at most 200).")] = None,
    min_agreement: Annotated[float, typer.Option(help="Minimum top-1 agreement of INT8 with FP32 on the held-out images (0-1).")] = 0.99,
    trt_version: Annotated[Optional[List[str]], typer.Option("--trt-version", help="TensorRT version, number or target name to write a cache for; repeatable (default: nano 8201 and agx-xavier 8502).")] = None,
    ort_native: Annotated[bool, typer.Option("--ort-native/--no-ort-native", help="Also write the ORT-native INT8 ONNX (fastest on CPU, not for TensorRT).")] = True,
    force: Annotated[bool, typer.Option(help="Replace a previous calibration in the output folder.")] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress bars on stderr.")] = True,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
):
    """Calibrate INT8 from an image folder in one pass: Q/DQ ONNX + TensorRT caches + report + accuracy gate."""
    from edgealex.calib.pipeline import calibrate as run_calibration

    result = run_calibration(
        str(model), str(images), str(out), count=count, method=method,
        holdout=str(holdout) if holdout else None, min_agreement=min_agreement,
        trt_versions=trt_version or None, force=force, ort_native=ort_native, progress=progress and not json_out,
    )
    if json_out:
        emit_json(result.to_dict())
        return
    gate = result.gate
    echo(f"calibrated {result.count} images ({result.method}, {len(result.stats.skipped)} skipped) in {result.seconds:.1f} s")
    for key, value in gate.agreement.items():
        accuracy = gate.accuracy.get(key)
        extra = f", accuracy {accuracy:.1%} (FP32 {gate.accuracy['fp32']:.1%})" if accuracy is not None else ""
        echo(f"  {key}: top-1 agreement with FP32 {value:.1%} ({gate.agree_counts[key]}/{gate.images}){extra}")
    echo(f"  Q/DQ ONNX (TensorRT >= 10 explicit INT8, ORT CPU): {result.qdq_onnx}")
    if result.ort_int8_onnx:
        echo(f"  ORT-native INT8 ONNX (CPU only):                  {result.ort_int8_onnx}")
    for number, path in sorted(result.caches.items()):
        echo(f"  TensorRT cache TRT-{number} (implicit INT8, DLA):      {path}")
    echo(f"  report: {result.report_md}   manifest: {result.manifest_path}")
