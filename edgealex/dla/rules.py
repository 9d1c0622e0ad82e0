"""DLA layer limits per TensorRT version, as data (facts §3.4).

Three rule sets exist:

- ``8.2``: the doc comments of ``TRT@8.2.1:include/NvInfer.h`` (used for TensorRT 8.0-8.4; the 8.0 and
  8.4 headers were not read separately).
- ``8.5``: the 8.2 limits plus the 8.5 changes (Softmax not on Xavier, Unary = Abs only, PReLU with
  constant slopes, average-pool padding rule "On Xavier" only, Concat "third to last axis"; the Resize
  rules were dropped from the header). Used for 8.5 and 8.6.
- ``10``: the 8.5 per-layer limits (the 10.x headers were not compared line by line - a caveat the
  report prints) plus the general limits of the current DLA docs (no dimension above 8192 except
  batch, 16 loadables per core).

Every rule cites its source so the report can show it.
"""

from dataclasses import dataclass, field, replace
from typing import FrozenSet, Optional, Tuple

from packaging.version import Version


@dataclass(frozen=True)
class DlaRules:
    """Limits of one rule set. Ranges are inclusive ``(low, high)``."""

    name: str
    source: str
    conv_kernel: Tuple[int, int] = (1, 32)
    conv_output_maps: Tuple[int, int] = (1, 8192)
    conv_stride: Tuple[int, int] = (1, 8)
    conv_padding: Tuple[int, int] = (0, 31)
    conv_groups_max: int = 8192
    conv_dilation: Tuple[int, int] = (1, 32)
    deconv_kernel: Tuple[int, int] = (1, 32)
    deconv_long_kernels: FrozenSet[int] = frozenset({64, 96, 128})
    pool_window: Tuple[int, int] = (1, 8)
    pool_stride: Tuple[int, int] = (1, 16)
    pool_padding: Tuple[int, int] = (0, 7)
    avgpool_inclusive_padding_only_on: Optional[str] = None  # None: every SoC; "tegra194": only on Xavier
    lrn_windows: FrozenSet[int] = frozenset({3, 5, 7, 9})
    activations: FrozenSet[str] = frozenset({"Relu", "Sigmoid", "Tanh", "Clip"})
    elementwise: FrozenSet[str] = frozenset({"Add", "Mul", "Max", "Min", "Sub", "Sum"})
    unary_known: bool = False  # 8.5+: only kABS documented
    softmax_known: bool = False  # 8.5+: not on Xavier; axis and size limits elsewhere
    prelu_known: bool = False  # 8.5+: slopes must be build-time constants
    resize_known: bool = True  # 8.2 documents nearest/asymmetric/floor; dropped from 8.5's header
    concat_axis_rule: str = "channel axis only"
    explicit_quantization: Optional[bool] = False  # Q/DQ on DLA: 8.x no, 10.x unverified (None)
    max_dim: Optional[int] = None  # general non-batch dimension limit, when documented for this version
    loadables_per_core: int = 16
    loadables_source: str = ("current DLA docs: 'only 16 DLA loadable can be loaded concurrently per core'; "
                             "TRT 8.x logs: 'DLA supports only 16 subgraphs per DLA core'")
    subgraph_bytes_max: int = 1 << 30
    caveats: Tuple[str, ...] = field(default_factory=tuple)


RULES_8_2 = DlaRules(
    name="8.2",
    source="TensorRT 8.2.1 include/NvInfer.h DLA doc comments (github.com/NVIDIA/TensorRT at tag 8.2.1)",
)

RULES_8_5 = DlaRules(
    name="8.5",
    source="TensorRT 8.5.3 include/NvInfer.h DLA doc comments (github.com/NVIDIA/TensorRT at tag 8.5.3)",
    avgpool_inclusive_padding_only_on="tegra194",
    unary_known=True,
    softmax_known=True,
    prelu_known=True,
    resize_known=False,
    concat_axis_rule="third to last axis (C)",
)

RULES_10 = replace(
    RULES_8_5,
    name="10",
    source="TensorRT 8.5 per-layer limits + current DLA docs (max non-batch dim 8192, 16 loadables per core)",
    explicit_quantization=None,
    max_dim=8192,
    caveats=("TensorRT 10.x per-layer DLA limits were not compared with the 10.x headers; the limits of TensorRT "
             "8.5.3 include/NvInfer.h are applied",),
)


def rules_for(trt_version):
    """The rule set for a TensorRT version (``packaging`` Version or string).

    Returns:
        DlaRules: with extra caveats when the version is only approximated by a neighbouring header.
    """
    version = trt_version if isinstance(trt_version, Version) else Version(str(trt_version))
    if version < Version("8.5"):
        if version.release[:2] != (8, 2):
            return _with_caveat(RULES_8_2, f"TensorRT {version}: the 8.2 header's DLA limits are applied "
                                           "(that version's header was not read)")
        return RULES_8_2
    if version < Version("10"):
        return RULES_8_5
    if version >= Version("11"):
        return _with_caveat(RULES_10, "TensorRT 11: DLA networks are strongly typed and DLA is supported only "
                                      "from 11.4.1 on AGX Orin with JetPack 7.2.2+ (docs.nvidia.com/deeplearning/tensorrt/11.4.1/"
                                      "inference-library/dla-strongly-typed-networks.html)")
    return RULES_10


def _with_caveat(rules, caveat):
    from dataclasses import replace

    return replace(rules, caveats=tuple(rules.caveats) + (caveat,))
