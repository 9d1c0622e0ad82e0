"""edgealex deploy: write DeepStream (many cameras per board) and Triton (many clients) deployments."""

from pathlib import Path
from typing import List, Optional

import typer

from edgealex.cli._common import echo, emit_json, user_errors

from typing_extensions import Annotated  # typing.Annotated needs Python 3.9; JetPack 5 has 3.8

app = typer.Typer(help="Deploy to NVIDIA DeepStream (many cameras per board) or Triton Inference Server "
                       "(many clients).", no_args_is_help=True)


def _size(text):
    from edgealex.errors import EdgeAlexError

    try:
        width, height = (int(v) for v in str(text).lower().split("x"))
        if width > 0 and height > 0:
            return width, height
    except ValueError:
        pass
    raise EdgeAlexError(f"--mux-size {text}", "is not WIDTHxHEIGHT", "pass e.g. --mux-size 1920x1080")


@app.command()
@user_errors
def deepstream(
    model: Annotated[Path, typer.Argument(help="ONNX model from `edgealex export`.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("deepstream"),
    sources: Annotated[Optional[List[str]], typer.Option("--sources", "--source", "-s", help="Source URI, repeat per camera: csi://0, /dev/video0, rtsp://..., file:///clip.mp4. Default: one DeepStream sample stream.")] = None,
    engine: Annotated[Optional[Path], typer.Option(help="TensorRT engine edgealex build made from this command's DeepStream ONNX (sidecar checked).")] = None,
    calib: Annotated[Optional[Path], typer.Option(help="INT8: the `edgealex calibrate` output folder of this model.")] = None,
    precision: Annotated[Optional[str], typer.Option("--precision", "-p", help="fp32, fp16 or int8. Default: the engine's, else int8 with --calib, else fp16.")] = None,
    target: Annotated[Optional[str], typer.Option("--target", "-t", help="Target profile: which TensorRT the device has (INT8 cache, DeepStream release). Default: from --engine.")] = None,
    resize: Annotated[str, typer.Option(help="How nvinfer scales frames: stretch (its default) or letterbox.")] = "stretch",
    batch_mode: Annotated[str, typer.Option(help="DeepStream ONNX batch axis: dynamic, or static = number of sources (for edgealex build and DLA).")] = "dynamic",
    classifier_threshold: Annotated[float, typer.Option(help="nvinfer classifier-threshold (a class is reported when its probability is above it).")] = 0.0,
    images: Annotated[Optional[Path], typer.Option(help="Held-out images (folder or manifest) to measure stretch vs crop. Default: the calibration's holdout.")] = None,
    max_images: Annotated[int, typer.Option(help="Measure on at most this many images.")] = 500,
    mux_size: Annotated[str, typer.Option(help="streammux and camera size WIDTHxHEIGHT (the cameras' native size).")] = "1280x720",
    fps: Annotated[int, typer.Option(help="Camera frame rate.")] = 30,
    force_int8: Annotated[bool, typer.Option(help="INT8 for a target without fast INT8 (Jetson Nano) anyway.")] = False,
    dla_core: Annotated[Optional[int], typer.Option("--dla-core", "--dla", help="Let nvinfer build for this DLA core (static batch). Default: from --engine, else the GPU.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
):
    """DeepStream: a DeepStream-ready ONNX, the nvinfer config, labels, and a deepstream-app config for N sources."""
    from edgealex.deploy.deepstream import agreement_sentence, deploy_deepstream

    result = deploy_deepstream(
        str(model), str(out), sources=sources or None, engine=str(engine) if engine else None,
        calib=str(calib) if calib else None, precision=precision, target=target, resize=resize, batch_mode=batch_mode,
        classifier_threshold=classifier_threshold, images=str(images) if images else None, max_images=max_images,
        mux_size=_size(mux_size), fps=fps, force_int8=force_int8, dla_core=dla_core)
    if json_out:
        emit_json(result.to_dict())
        return
    echo(f"wrote {result.out_dir}: {len(result.sources)} source(s), batch {result.batch} ({result.batch_mode}), "
         f"{result.precision}")
    for role, path in result.files.items():
        echo(f"  {role:<22} {path}")
    echo("parity with edgealex's pipeline: max abs diff {:.2g} of probabilities, top-1 agreement {:.0%}".format(
        result.parity["max_abs_diff"], result.parity["top1_agreement"]))
    if result.trt_version:
        echo(f"TensorRT {result.trt_version}: {result.deepstream_release or 'no DeepStream release known'}")
    echo(agreement_sentence(result.agreement))
    echo("run on the device:")
    echo(f"  {result.command}")


@app.command()
@user_errors
def triton(
    model: Annotated[Path, typer.Argument(help="ONNX from `edgealex export`, or an engine from `edgealex build` (ONNX Runtime .onnx or TensorRT .engine).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Model repository folder.")] = Path("model_repository"),
    name: Annotated[Optional[str], typer.Option(help="Model name (its folder). Default: the file's stem.")] = None,
    max_batch_size: Annotated[Optional[int], typer.Option(help="ONNX Runtime: largest dynamic batch (default 8). TensorRT: default and maximum from the engine's profile.")] = None,
    queue_delay_us: Annotated[int, typer.Option(help="Dynamic batching max_queue_delay_microseconds.")] = 1000,
    instances: Annotated[int, typer.Option(help="Model instances (instance_group count).")] = 1,
    kind: Annotated[str, typer.Option(help="Instance kind: auto, gpu or cpu.")] = "auto",
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
):
    """Triton: a model repository (config.pbtxt, 1/model.onnx or 1/model.plan, labels) with dynamic batching."""
    from edgealex.deploy.triton import deploy_triton

    result = deploy_triton(str(model), str(out), name=name, max_batch_size=max_batch_size,
                           queue_delay_us=queue_delay_us, instances=instances, kind=kind)
    if json_out:
        emit_json(result.to_dict())
        return
    echo(f"wrote {result.model_dir} ({result.platform}, max_batch_size {result.max_batch_size}"
         f"{', dynamic batching' if result.dynamic_batching else ''})")
    for role, path in result.files.items():
        echo(f"  {role:<9} {path}")
    if result.parity:
        echo("parity with edgealex's pipeline: max abs diff {:.2g} of probabilities, top-1 agreement {:.0%}".format(
            result.parity["max_abs_diff"], result.parity["top1_agreement"]))
    if result.trt_version:
        echo(f"TensorRT {result.trt_version}: {result.triton_release or 'no Triton release known to edgealex'}")
    echo("start the server:")
    echo(f"  {result.command}")
