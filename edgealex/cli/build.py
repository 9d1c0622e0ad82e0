"""edgealex build: ONNX -> engine for a target (TensorRT Python API, trtexec or ONNX Runtime)."""

from pathlib import Path
from typing import Optional

import typer

from edgealex.cli._common import echo, emit_json, user_errors

from typing_extensions import Annotated  # typing.Annotated needs Python 3.9; JetPack 5 has 3.8


@user_errors
def build(
    model: Annotated[Path, typer.Argument(help="ONNX model from `edgealex export`.")],
    target: Annotated[Optional[str], typer.Option("--target", "-t", help="Target profile (see `edgealex targets`). Default: this machine, detected.")] = None,
    precision: Annotated[Optional[str], typer.Option("--precision", "-p", help="fp32, fp16 or int8. Default: the target's.")] = None,
    dla_core: Annotated[Optional[int], typer.Option("--dla-core", "--dla", help="Build for this DLA core (FP16/INT8, static shapes).")] = None,
    gpu_fallback: Annotated[bool, typer.Option("--gpu-fallback/--no-gpu-fallback", help="DLA layers may fall back to the GPU; --no-gpu-fallback is strict DLA.")] = True,
    calib: Annotated[Optional[Path], typer.Option(help="INT8: calibration folder from `edgealex calibrate`, a TensorRT .cache file, or an image folder (on-device calibration).")] = None,
    workspace_mib: Annotated[Optional[int], typer.Option(help="TensorRT workspace in MiB. Default: the target's.")] = None,
    timing_cache: Annotated[Optional[Path], typer.Option(help="TensorRT timing cache file, reused and updated across builds.")] = None,
    builder: Annotated[str, typer.Option(help="auto, python (TensorRT API), trtexec or ort (ONNX Runtime).")] = "auto",
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("engines"),
    force_int8: Annotated[bool, typer.Option(help="Build INT8 on a board without fast INT8 (Jetson Nano) anyway.")] = False,
    print_trtexec: Annotated[bool, typer.Option(help="Print the equivalent trtexec command for the target and exit (any machine).")] = False,
    ort_int8: Annotated[str, typer.Option(help="ONNX Runtime INT8 model: auto (ORT's own when calibrated, ~20% faster on CPU), native or qdq.")] = "auto",
    max_batch: Annotated[Optional[int], typer.Option(help="Dynamic-batch ONNX: largest batch the engine takes (optimization profile max). Default: 8.")] = None,
    opt_batch: Annotated[Optional[int], typer.Option(help="Dynamic-batch ONNX: batch TensorRT optimizes for. Default: --max-batch.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
):
    """Build an engine: TensorRT (Python API or trtexec) on Jetson/GPU, ONNX Runtime on CPU."""
    from edgealex.build.api import build_engine

    result = build_engine(
        str(model), target=target, precision=precision, dla_core=dla_core, gpu_fallback=gpu_fallback,
        calib=str(calib) if calib else None, workspace_mib=workspace_mib,
        timing_cache=str(timing_cache) if timing_cache else None, builder=builder, out_dir=str(out),
        force_int8=force_int8, print_trtexec=print_trtexec, ort_int8=ort_int8, max_batch=max_batch,
        opt_batch=opt_batch,
    )
    if json_out:
        emit_json(result.to_dict())
        return
    if result.printed_only:
        for path in result.prepared:
            echo(f"# prepared {path}")
        echo(f"# {result.builder_reason}")
        echo(result.command_line)
        echo("# the engine this writes has no edgealex sidecar; `edgealex build --builder trtexec` on the device "
             "runs the same command and records one")
        return
    echo(f"builder: {result.builder} ({result.builder_reason})")
    echo(f"wrote {result.engine_path}")
    profile = result.record.batch_profile if result.record is not None else None
    if profile:
        echo("batch profile: min {min} / opt {opt} / max {max} (run and bench refuse other batch sizes)".format(**profile))
    echo(f"provenance {result.sidecar_path}")
    if result.log_path:
        echo(f"build log {result.log_path}")
    if result.layers.get("dla") or result.layers.get("gpu"):
        echo("layers on DLA: {}; on GPU: {}".format(len(result.layers.get("dla", [])), len(result.layers.get("gpu", []))))
    echo(f"took {result.seconds:.1f} s")
