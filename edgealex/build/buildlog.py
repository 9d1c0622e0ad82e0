"""Reading TensorRT's verbose build log: which layers run on the DLA and which on the GPU.

The engine inspector shows a whole DLA subgraph as one ``{ForeignNode[first...last]}`` layer, so the
verbose build log is where TensorRT says what it placed where (facts §3.6). Three spellings occur:

* TensorRT 7 / 8.0 / 8.2 - a header, then ONE line listing every layer, comma-separated, with DLA
  subgraphs in braces::

      [I] [TRT] --------------- Layers running on DLA:
      [I] [TRT] {Conv_0,Relu_1,MaxPool_2}, {Conv_3,Relu_4},
      [I] [TRT] --------------- Layers running on GPU:
      [I] [TRT] Flatten_10, Gemm_11 + Relu_12, Gemm_13,

* TensorRT 8.4+ - a framed header, then one ``[DlaLayer]`` / ``[GpuLayer]`` line per layer, the
  GPU ones prefixed with the layer type::

      [I] [TRT] ---------- Layers Running on DLA ----------
      [I] [TRT] [DlaLayer] {ForeignNode[Conv_0...Relu_9]}
      [I] [TRT] ---------- Layers Running on GPU ----------
      [I] [TRT] [GpuLayer] SHUFFLE: Flatten_10

* the cuDLA sample's mix of the old header with ``[DlaLayer]`` lines and trailing commas.

A build with on-device calibration builds twice (a calibration network, then the engine), so the
LAST listing wins. Per-layer fallback warnings ("Unsupported on DLA. Switching this layer's device
type to GPU", "is not supported on DLA, falling back to GPU") are collected too.
"""

import re

_HEADER = re.compile(r"-{3,}\s*Layers\s+running\s+on\s+(DLA|GPU)\b", re.IGNORECASE)
_MARKER = re.compile(r"\[(DlaLayer|GpuLayer)\]\s*(.*)$")
# Log prefixes: "[11/20/2026-10:00:00]", "[I]", "[TRT]", "INFO:", "[TensorRT] INFO:", "INFO: [TRT]:".
_PREFIX = re.compile(r"^\s*(?:(?:\[[^\]]*\]|(?:VERBOSE|INFO|WARNING|ERROR)\s*:)\s*:?\s*)*")
_LAYER_TYPE = re.compile(r"^[A-Z][A-Z0-9_]*:\s+")
_FALLBACK = (
    re.compile(r"Layer '(.+?)' \([A-Z0-9_]+\): Unsupported on DLA"),
    re.compile(r"layer (.+?) is not supported on DLA, falling back to GPU"),
    re.compile(r"Switching to GPU for layer (.+?)\s*$"),
)


def _content(line):
    """A log line without its timestamp / severity / [TRT] prefixes."""
    return _PREFIX.sub("", line, count=1).strip()


def split_layer_list(text):
    """Split a one-line layer list at top-level commas (commas inside {}, [] or () are kept).

    >>> split_layer_list("{Conv_0,Relu_1}, PWN(PWN(Sigmoid_1), Mul_2), Gemm_3,")
    ['{Conv_0,Relu_1}', 'PWN(PWN(Sigmoid_1), Mul_2)', 'Gemm_3']
    """
    items, depth, current = [], 0, []
    for char in text:
        if char in "{[(":
            depth += 1
        elif char in "}])":
            depth = max(depth - 1, 0)
        if char == "," and depth == 0:
            items.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    items.append("".join(current).strip())
    return [item for item in items if item]


def _clean_entry(text):
    text = text.strip().rstrip(",").strip()
    return _LAYER_TYPE.sub("", text, count=1)


def parse_layer_placement(log_text):
    """The layers TensorRT placed on the DLA and on the GPU, from a verbose build log.

    Args:
        log_text (str): the build log (Python-API logger output or trtexec --verbose output).

    Returns:
        dict: ``{"dla": [...], "gpu": [...], "fallback": [...], "found": bool}`` - entries are
        TensorRT's (possibly fused) layer names, e.g. ``{ForeignNode[Conv_0...Relu_9]}`` or
        ``Gemm_11 + Relu_12``; ``fallback`` lists layers TensorRT moved from the DLA to the GPU;
        ``found`` is False when the log has no placement listing (e.g. not a verbose log).
    """
    records = []
    section = None
    expecting_list = False  # right after a header: an old-style one-line list may follow
    fallback = []
    for raw in log_text.splitlines():
        for pattern in _FALLBACK:
            match = pattern.search(raw)
            if match:
                name = match.group(1).strip()
                if name not in fallback:
                    fallback.append(name)
                break
        header = _HEADER.search(raw)
        if header:
            section = header.group(1).lower()
            if section == "dla" or not records:
                records.append({"dla": [], "gpu": []})
            expecting_list = True
            continue
        if section is None:
            continue
        marker = _MARKER.search(raw)
        if marker:
            entry = _clean_entry(marker.group(2))
            if entry:
                records[-1]["dla" if marker.group(1) == "DlaLayer" else "gpu"].append(entry)
            expecting_list = False
            continue
        if expecting_list:
            # TensorRT 8.0/8.2: the line after the header is the whole list (empty = no layers).
            records[-1][section].extend(_clean_entry(item) for item in split_layer_list(_content(raw)))
        # Any other line ends the listing.
        section, expecting_list = None, False
    last = records[-1] if records else {"dla": [], "gpu": []}
    return {"dla": last["dla"], "gpu": last["gpu"], "fallback": fallback, "found": bool(records)}


def read_layer_placement(log_path):
    """:func:`parse_layer_placement` of a log file (missing file -> nothing found)."""
    try:
        with open(str(log_path), encoding="utf-8", errors="replace") as handle:
            return parse_layer_placement(handle.read())
    except FileNotFoundError:
        return {"dla": [], "gpu": [], "fallback": [], "found": False}
