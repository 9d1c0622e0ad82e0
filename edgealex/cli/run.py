"""edgealex run: classify frames from a camera, stream, file, folder or the synthetic conveyor."""

from pathlib import Path
from typing import List, Optional

import typer

from edgealex.camera.source import DEFAULT_STALL_TIMEOUT_S
from edgealex.cli._common import echo, emit_json, user_errors

from typing_extensions import Annotated  # typing.Annotated needs Python 3.9; JetPack 5 has 3.8

SOURCE_HELP = ("Frame source URI: synthetic:// (default; ?width=1280&height=720&fps=30&defect_rate=0.3&seed=0"
               "&count=N), csi://0, v4l2:///dev/video0, /dev/video0, 0, rtsp://..., a video file, an image folder "
               "or a quoted glob. Options go in the query string, e.g. clip.mp4?loop=1&fps=15.")
SINK_HELP = ("Output, repeatable: out.mp4/.avi (annotated video), verdicts.jsonl (one line per frame), "
             "display:// (window; q stops), null://; station: http://127.0.0.1:8080 (live page, ?fps=10&token=...), "
             "mqtt://HOST:1883/TOPIC (verdicts, ?qos=1&only=defect), gpio://PIN?pulse_ms=50 (reject pulse, Jetson).")


@user_errors
def run(
    engine: Annotated[Path, typer.Argument(help="Engine from `edgealex build` (.onnx + sidecar, or .engine), or an exported ONNX.")],
    source: Annotated[str, typer.Option("--source", "-s", help=SOURCE_HELP)] = "synthetic://",
    sink: Annotated[Optional[List[str]], typer.Option("--sink", help=SINK_HELP)] = None,
    threshold: Annotated[float, typer.Option(help="Minimum confidence for a defect verdict (0..1).")] = 0.5,
    defect_classes: Annotated[Optional[str], typer.Option(help="Comma-separated defect classes. Default: every label except ok/good/pass/normal.")] = None,
    duration: Annotated[Optional[float], typer.Option(help="Stop after this many seconds (opening the source included).")] = None,
    stall_timeout: Annotated[float, typer.Option("--stall-timeout", help="Seconds without a new frame from a camera or stream before it counts as disconnected: logged as a gap (JSONL event + summary) and reopened with backoff.")] = DEFAULT_STALL_TIMEOUT_S,
    max_frames: Annotated[Optional[int], typer.Option(help="Stop after this many frames.")] = None,
    batch: Annotated[int, typer.Option(help="Frames per inference (throughput mode; needs a dynamic or matching batch).")] = 1,
    queue_size: Annotated[int, typer.Option(help="Frames buffered between capture and inference.")] = 4,
    drop: Annotated[Optional[str], typer.Option(help="Full queue: 'oldest' drops the oldest frame, 'none' waits. Default: oldest for live sources, none for files.")] = None,
    providers: Annotated[Optional[str], typer.Option(help="ONNX Runtime providers, e.g. cpu, cuda, tensorrt or auto. Default: the engine's, else cpu.")] = None,
    threads: Annotated[Optional[int], typer.Option(help="ONNX Runtime intra-op threads (0 = ONNX Runtime's default).")] = None,
    dla_core: Annotated[Optional[int], typer.Option("--dla-core", help="TensorRT: DLA core for a DLA engine (default: the sidecar's).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
):
    """Run the camera-to-verdict loop and print pipeline fps vs engine-only fps, latencies, defects."""
    from edgealex.pipeline.loop import run_inspection

    runner_options = {}
    if providers is not None:
        runner_options["providers"] = providers
    if threads is not None:
        runner_options["intra_op_num_threads"] = threads
    if dla_core is not None:
        runner_options["dla_core"] = dla_core
    summary = run_inspection(
        str(engine), source=source, sinks=list(sink or []), threshold=threshold, defect_classes=defect_classes,
        duration_s=duration, max_frames=max_frames, batch=batch, queue_size=queue_size, drop_policy=drop,
        runner_options=runner_options, stall_timeout_s=stall_timeout,
    )
    if not sink:  # after the run, so a bad input's error line is always the first line
        from edgealex.log import logger
        from edgealex.pipeline.loop import NO_SINK_WARNING

        logger.warning(NO_SINK_WARNING)
    if json_out:
        emit_json(summary.to_dict())
        return
    echo(summary.format())
    for uri in sink or []:
        if "://" not in uri or uri.startswith("file://"):
            echo(f"wrote {uri}")
