"""The trtexec equivalent of a :class:`~edgealex.build.plan.BuildPlan`, and running it.

trtexec is the builder for an interpreter without TensorRT bindings (Jetson Nano's bindings exist
for Python 3.6 only) and ``--print-trtexec`` prints the command on any machine. Flag spelling per
version (facts §4):

* workspace: ``--workspace=N`` (MiB) on 8.0/8.2; ``--memPoolSize=workspace:N`` on 8.4+
  (``--workspace`` is deprecated from 8.4 and removed in 10).
* ``--explicitBatch``: only on 8.0 (no effect from 8.2, an ONNX always is explicit batch; removed in 10).
* build without inference: ``--buildOnly`` up to 8.5, ``--skipInference`` from 8.6.
* ``--profilingVerbosity=detailed`` from 8.2.
* precision: ``--fp16`` / ``--int8`` (+ ``--calib=<cache>`` for implicit INT8; trtexec cannot
  calibrate from images); on 11.x no precision flags at all (strongly typed: the ONNX carries the
  precision, and ``--stronglyTyped`` is a deprecated no-op there).
* DLA: ``--useDLACore=N`` and ``--allowGPUFallback``.
* ``--timingCacheFile=<file>`` reads and updates a timing cache; ``--verbose`` keeps the layer
  placement in the log; a dynamic-batch input gets the plan's optimization profile as
  ``--minShapes/--optShapes/--maxShapes=<input>:Nx3x224x224`` (facts §4); a static model gets no
  shape flags (trtexec refuses explicit shapes for it).
"""

import os
import re
import shlex
import shutil
import subprocess
import time

from packaging.version import Version

from edgealex.errors import EdgeAlexError
from edgealex.log import logger

JETPACK_TRTEXEC = "/usr/src/tensorrt/bin/trtexec"
_VERSION_BANNER = re.compile(r"TensorRT\.trtexec\s*\[TensorRT v(\d+)\]")


def find_trtexec():
    """Path of trtexec: on PATH, else JetPack's ``/usr/src/tensorrt/bin/trtexec``; None if neither."""
    found = shutil.which("trtexec")
    if found:
        return found
    if os.path.isfile(JETPACK_TRTEXEC) and os.access(JETPACK_TRTEXEC, os.X_OK):
        return JETPACK_TRTEXEC
    return None


def version_from_number(number):
    """``NV_TENSORRT_VERSION`` -> version string: 8201 -> "8.2.1", 100300 -> "10.3.0" (facts §2.2)."""
    number = int(number)
    if number >= 100000:
        major_minor, patch = divmod(number, 100)
        major, minor = divmod(major_minor, 100)
    else:
        major, rest = divmod(number, 1000)
        minor, patch = divmod(rest, 100)
    return f"{major}.{minor}.{patch}"


def parse_trtexec_version(text):
    """TensorRT version from trtexec's banner ``&&&& RUNNING TensorRT.trtexec [TensorRT v8502]``."""
    match = _VERSION_BANNER.search(text)
    return version_from_number(match.group(1)) if match else None


def trtexec_version(trtexec, timeout_s=60):
    """The TensorRT version a trtexec binary belongs to (runs ``trtexec --help``), or None."""
    try:
        proc = subprocess.run([trtexec, "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              universal_newlines=True, timeout=timeout_s)
    except (OSError, subprocess.SubprocessError) as exc:
        logger.warning("could not run %s --help (%s)", trtexec, exc)
        return None
    return parse_trtexec_version(proc.stdout)


def trtexec_command(plan, onnx_path, engine_path, calib_cache=None, timing_cache=None, input_name=None,
                    input_shape=None, dynamic=False, trtexec="trtexec", verbose=True):
    """The trtexec argument list that builds what ``plan`` describes.

    Args:
        plan (BuildPlan): the build plan.
        onnx_path (str): the ONNX trtexec parses (already the Q/DQ or FP16 ONNX when the plan says so).
        engine_path (str): where ``--saveEngine`` writes.
        calib_cache (str or None): calibration cache for implicit INT8.
        timing_cache (str or None): timing cache file (read and updated).
        input_name (str or None): model input, for ``--shapes`` on a dynamic input.
        input_shape (list or None): concrete input shape used for ``--shapes``.
        dynamic (bool): the ONNX input has a dynamic dimension. Defaults to False.
        trtexec (str): the executable. Defaults to "trtexec".
        verbose (bool): add ``--verbose`` (layer placement in the log). Defaults to True.

    Returns:
        list[str]: argv, ``[trtexec, "--onnx=...", ...]``.

    Raises:
        EdgeAlexError: on-device calibration from images (trtexec cannot calibrate), or a
            calibrator plan without a cache.
    """
    version = Version(plan.trt_version)
    args = [str(trtexec), f"--onnx={onnx_path}"]
    if "EXPLICIT_BATCH" in plan.network_flags and version < Version("8.2"):
        args.append("--explicitBatch")
    args.append(f"--saveEngine={engine_path}")
    if plan.workspace_api == "max_workspace_size":
        args.append(f"--workspace={plan.workspace_mib}")
    else:
        args.append(f"--memPoolSize=workspace:{plan.workspace_mib}")
    if "FP16" in plan.builder_flags:
        args.append("--fp16")
    if "INT8" in plan.builder_flags:
        args.append("--int8")
    if plan.int8_mode == "calibrator":
        if plan.calibration_source != "cache" or not calib_cache:
            raise EdgeAlexError("--builder trtexec", "trtexec cannot calibrate from images; it only reads a "
                                "calibration cache (--calib=<file>)",
                                "build with the TensorRT Python API on the device (--builder python), or run "
                                "`edgealex calibrate` and pass the cache for this TensorRT version")
        args.append(f"--calib={calib_cache}")
    if plan.dla_core is not None:
        args.append(f"--useDLACore={plan.dla_core}")
        if plan.gpu_fallback:
            args.append("--allowGPUFallback")
    if timing_cache:
        args.append(f"--timingCacheFile={timing_cache}")
    if plan.batch_profile is not None and input_name and input_shape:
        from edgealex.build.plan import profile_shapes

        for flag, shape in zip(("--minShapes", "--optShapes", "--maxShapes"),
                               profile_shapes(plan.batch_profile, input_shape)):
            args.append("{}={}:{}".format(flag, input_name, "x".join(str(d) for d in shape)))
    elif dynamic and input_name and input_shape:
        args.append("--shapes={}:{}".format(input_name, "x".join(str(int(d)) for d in input_shape)))
    if plan.profiling_verbosity:
        args.append("--profilingVerbosity=detailed")
    args.append("--skipInference" if version >= Version("8.6") else "--buildOnly")
    if verbose:
        args.append("--verbose")
    return args


def format_command(argv):
    """A shell-quoted one-line command."""
    return " ".join(shlex.quote(str(a)) for a in argv)


def run_trtexec(argv, log_path, timeout_s=None, heartbeat_s=30.0):
    """Run trtexec, teeing its output into ``log_path``; a user error unless it PASSED.

    Args:
        argv (list): the command from :func:`trtexec_command`.
        log_path (str): file that receives the full output (kept next to the engine).
        timeout_s (float or None): kill trtexec after this many seconds. Defaults to None.
        heartbeat_s (float): log a "still building" line this often. Defaults to 30.

    Returns:
        str: the complete output.

    Raises:
        EdgeAlexError: trtexec could not start, failed (non-zero exit or no PASSED line) or timed out;
            the message quotes its last error lines.
    """
    started = time.time()
    last_note = started
    lines = []
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                                bufsize=1)
    except OSError as exc:
        raise EdgeAlexError(argv[0], f"cannot run trtexec ({exc.strerror or exc})",
                            f"check the path, or install TensorRT's samples ({JETPACK_TRTEXEC} on JetPack)")
    try:
        with open(log_path, "w", encoding="utf-8") as log:
            log.write("# " + format_command(argv) + "\n")
            for line in proc.stdout:
                log.write(line)
                lines.append(line.rstrip("\n"))
                now = time.time()
                if now - last_note >= heartbeat_s:
                    logger.info("trtexec still building (%.0f s)", now - started)
                    last_note = now
                if timeout_s is not None and now - started > timeout_s:
                    proc.kill()
                    raise EdgeAlexError(argv[0], f"trtexec did not finish within {timeout_s:.0f} s",
                                        f"see {log_path}; raise the limit or reduce --workspace-mib")
        code = proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = "\n".join(lines)
    if code != 0 or "&&&& PASSED" not in text:
        errors = [line for line in lines if "[E]" in line or "ERROR" in line][-5:]
        detail = ("; ".join(e.strip() for e in errors)) or (lines[-1].strip() if lines else "no output")
        raise EdgeAlexError(argv[0], f"trtexec failed (exit code {code}): {detail}",
                            f"the full log is {log_path}")
    return text


def selected_device(text):
    """GPU name from trtexec's "Selected Device: ..." line, or None."""
    match = re.search(r"Selected Device:\s*(.+)", text)
    return match.group(1).strip() if match else None
