"""DLA placement: predict from the documented per-version layer limits, and ask TensorRT where it can.

``dla_check(onnx_path, target, precision)`` is what ``edgealex dla-check`` runs: the prediction
(:func:`predict_placement`) plus, where ``tensorrt`` imports and a builder can be created, TensorRT's
own ``can_run_on_DLA`` answers compared node by node.
"""

from edgealex.dla.placement import NodePlacement, PlacementReport, predict_placement
from edgealex.dla.rules import DlaRules, rules_for

__all__ = ["DlaRules", "NodePlacement", "PlacementReport", "dla_check", "predict_placement", "rules_for"]


def dla_check(onnx_path, target, precision=None, dla_core=0, use_tensorrt=True):
    """Predict placement and, when possible, compare with TensorRT.

    Args:
        onnx_path (str): the ONNX model.
        target (str|Target): a target with DLA.
        precision (str|None): fp16/int8 (default: the target's).
        dla_core (int): DLA core for the TensorRT query (checked against the target).
        use_tensorrt (bool): try the TensorRT cross-check.

    Returns:
        PlacementReport: ``tensorrt_check`` holds the comparison, or ``{"skipped": reason}``.

    Raises:
        EdgeAlexError: no DLA on the target, bad DLA core, unreadable model.
    """
    from edgealex.errors import EdgeAlexError
    from edgealex.target import load_target

    target = load_target(target)
    report = predict_placement(onnx_path, target, precision)
    if dla_core is not None and not 0 <= dla_core < target.dla_cores:
        target.check_dla(dla_core, "fp16")  # raises "DLA core N does not exist on <board>"
    if not use_tensorrt:
        report.tensorrt_check = {"skipped": "not requested (--no-tensorrt)"}
        return report
    from edgealex.dla.trtcheck import ask_tensorrt, compare

    try:
        answers = ask_tensorrt(onnx_path, report.precision, dla_core or 0)
    except EdgeAlexError as err:
        report.tensorrt_check = {"skipped": f"{err.what}. {err.note}".strip()}
        return report
    compare(report, answers)
    return report
