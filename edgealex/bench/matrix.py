"""``bench --matrix``: every precision x device a target offers, building the engines that are missing.

Configurations come from the target profile: its precisions, each on the GPU (or CPU) and, for
FP16/INT8, on each DLA core (DLA runs FP16 and INT8 only). Engines are built with
:func:`edgealex.build.api.build_engine` into ``<out>/engines``; one that already exists for the same
ONNX (sha256 in its sidecar) and this machine's backend version is reused. INT8 needs ``--calib``
(the output of ``edgealex calibrate``, a calibration cache or an image folder, as for
``edgealex build``); without it INT8 configurations are skipped with that reason.
"""

import glob
import os

from edgealex.artifacts import check_input_file, sha256_file
from edgealex.errors import EdgeAlexError
from edgealex.log import logger


def check_matrix_options(matrix, calib):
    """Refuse ``--calib`` without ``--matrix``: only ``--matrix`` builds engines, so nothing would use it.

    Raises:
        EdgeAlexError: ``calib`` is given and ``matrix`` is False.
    """
    if calib and not matrix:
        raise EdgeAlexError(f"--calib {calib}", "is only used with --matrix (the INT8 engines it builds); "
                            "a benchmarked engine was calibrated when it was built",
                            "add --matrix --onnx model.onnx, or build the INT8 engine first: "
                            "`edgealex build model.onnx --precision int8 --calib DIR`")


def matrix_configs(target):
    """(precision, dla_core or None, ort_int8 or None) for every configuration the target supports.

    ONNX Runtime targets get both INT8 layouts: ORT's own ("native", fastest on CPU) and the
    TensorRT-compatible Q/DQ one ("qdq").
    """
    configs = []
    for precision in target.precisions:
        if precision == "int8" and target.backend == "ort":
            configs += [(precision, None, "native"), (precision, None, "qdq")]
            continue
        configs.append((precision, None, None))
        if precision in ("fp16", "int8"):
            configs += [(precision, core, None) for core in range(int(target.dla_cores or 0))]
    return configs


def _device(dla_core, target):
    if dla_core is not None:
        return f"dla{dla_core}"
    return "cpu" if target.backend == "ort" else "gpu"


def _existing(engines_dir, stem, precision, device, target, onnx_sha256):
    from edgealex.engine import read_record

    for path in sorted(glob.glob(os.path.join(engines_dir, f"{stem}-{precision}-{device}-*-{target.name}.*"))):
        if path.endswith(".json"):
            continue
        try:
            record = read_record(path)
        except EdgeAlexError:
            continue
        if record.onnx_sha256 == onnx_sha256:
            return path
    return None


def matrix_engines(onnx, target_name, out_dir, calib=None):
    """Engines for every configuration of the target, built when missing.

    Args:
        onnx (str): the FP32 ONNX from ``edgealex export``.
        target_name (str): target profile (None: this machine's).
        out_dir (str): results folder; engines go to ``<out_dir>/engines``.
        calib (str): calibration for INT8 (see ``edgealex build --calib``).

    Returns:
        (List[str], List[Tuple[str, str]]): engine paths, and (configuration, reason) for the ones
        that could not be built here.

    Raises:
        EdgeAlexError: no ``--onnx`` given.
    """
    if not onnx:
        raise EdgeAlexError("--matrix", "needs the FP32 ONNX to build from", "pass --onnx model.onnx")
    check_input_file(onnx, "ONNX model", "check --onnx or run `edgealex export`",
                     folder_fix="pass the .onnx file itself")
    from edgealex.build.api import build_engine
    from edgealex.target import resolve_target

    target = resolve_target(target_name)
    engines_dir = os.path.join(out_dir, "engines")
    stem = os.path.splitext(os.path.basename(onnx))[0]
    onnx_sha256 = sha256_file(onnx)
    if calib and "int8" in target.precisions:  # a --calib that cannot serve this target: said before any build
        from edgealex.build.calibinput import read_calib_arg

        offer = read_calib_arg(calib, onnx_sha256)
        if offer.kind != "output" and target.backend == "ort":
            what = "an image folder" if offer.kind == "images" else "a TensorRT calibration cache"
            raise EdgeAlexError("--calib " + str(calib), f"is {what}; ONNX Runtime INT8 (target {target.name}) needs "
                                "the output folder of `edgealex calibrate`",
                                f"run `edgealex calibrate {onnx} --images IMAGES -o calib/out` and pass --calib calib/out")
    paths, skipped = [], []
    for precision, dla_core, ort_int8 in matrix_configs(target):
        device = _device(dla_core, target)
        label = "{} {}{} on {}".format(target.name, precision, " " + ort_int8 if ort_int8 else "", device)
        # build_engine names the Q/DQ flavour "<model>.qdq-int8-..." (the native one "<model>-int8-...")
        found = _existing(engines_dir, stem + (".qdq" if ort_int8 == "qdq" else ""), precision, device, target,
                          onnx_sha256)
        if found:
            logger.info("matrix: %s: reusing %s", label, found)
            paths.append(found)
            continue
        if precision == "int8" and not calib:
            skipped.append((label, "INT8 needs --calib (the output folder of `edgealex calibrate`)"))
            continue
        try:
            extra = {"ort_int8": ort_int8} if ort_int8 else {}
            result = build_engine(onnx, target=target, precision=precision, dla_core=dla_core,
                                  calib=calib if precision == "int8" else None, out_dir=engines_dir, **extra)
        except EdgeAlexError as exc:
            if exc.what not in {why for _, why in skipped}:  # each reason once
                logger.warning("matrix: %s not built: %s", label, exc.what)
            skipped.append((label, exc.what))
            continue
        paths.append(result.engine_path)
    if not paths:
        raise EdgeAlexError("--matrix", f"no configuration of target {target.name} could be built here: {group_reasons(skipped)}", "check --onnx, --calib and --target")
    return paths, skipped


def group_reasons(skipped):
    """"fp32 on gpu, fp16 on gpu: TensorRT is not installed; int8 on gpu: ..." - each reason once.

    Args:
        skipped (list): (configuration label, reason) pairs.
    """
    order, by_reason = [], {}
    for label, why in skipped:
        if why not in by_reason:
            order.append(why)
        by_reason.setdefault(why, []).append(label)
    return "; ".join("{}: {}".format(", ".join(by_reason[why]), why) for why in order)
