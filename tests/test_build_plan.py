"""The TensorRT build plan per generation, as pure data (facts §1.1, §2.6, §3.5)."""

import types

import pytest

from edgealex.build.plan import (GENERATIONS, features_for_version, generation, int8_source_preference, make_plan,
                                 probe_features)
from edgealex.errors import EdgeAlexError

# One real release per generation the toolkit meets (facts §0).
RELEASES = {"8.0": "8.0.1", "8.2": "8.2.1", "8.4": "8.4.3", "8.5": "8.5.2", "8.6": "8.6.1", "10": "10.3.0",
            "11": "11.1.0"}


def test_every_generation_has_a_release():
    assert sorted(RELEASES) == sorted(GENERATIONS)
    assert [generation(RELEASES[g]) for g in GENERATIONS] == list(GENERATIONS)


@pytest.mark.parametrize("gen, network_flags, workspace_api, profiling, progress", [
    ("8.0", ["EXPLICIT_BATCH"], "max_workspace_size", None, "spinner"),
    ("8.2", ["EXPLICIT_BATCH"], "max_workspace_size", "DETAILED", "spinner"),
    ("8.4", ["EXPLICIT_BATCH"], "set_memory_pool_limit", "DETAILED", "spinner"),
    ("8.5", ["EXPLICIT_BATCH"], "set_memory_pool_limit", "DETAILED", "spinner"),
    ("8.6", ["EXPLICIT_BATCH"], "set_memory_pool_limit", "DETAILED", "spinner"),
    ("10", [], "set_memory_pool_limit", "DETAILED", "monitor"),
    ("11", [], "set_memory_pool_limit", "DETAILED", "monitor"),
])
def test_network_workspace_and_progress_per_generation(gen, network_flags, workspace_api, profiling, progress):
    plan = make_plan(RELEASES[gen], "fp32", workspace_mib=512)
    assert plan.generation == gen
    assert plan.network_flags == network_flags
    assert plan.workspace_api == workspace_api
    assert plan.workspace_mib == 512 and plan.workspace_bytes == 512 << 20
    assert plan.profiling_verbosity == profiling
    assert plan.progress == progress
    assert plan.build_call == "build_serialized_network" and plan.parse_call == "parse_from_file"
    assert plan.builder_flags == [] and plan.int8_mode is None and plan.onnx_input == "source"
    assert plan.device_type == "GPU" and plan.device == "gpu"


@pytest.mark.parametrize("gen", ["8.0", "8.2", "8.4", "8.5", "8.6", "10"])
def test_fp16_uses_the_builder_flag_before_11(gen):
    plan = make_plan(RELEASES[gen], "fp16")
    assert plan.builder_flags == ["FP16"]
    assert plan.onnx_input == "source" and not plan.strongly_typed


def test_fp16_on_11_converts_the_onnx_instead_of_flags():
    plan = make_plan("11.1.0", "fp16")
    assert plan.builder_flags == [] and plan.strongly_typed
    assert plan.onnx_input == "fp16"
    assert any("converting the ONNX to FP16" in d for d in plan.decisions)


@pytest.mark.parametrize("gen", ["8.0", "8.2", "8.4", "8.5", "8.6"])
def test_int8_on_8x_is_implicit_with_the_entropy_calibrator(gen):
    for source in ("cache", "images"):
        plan = make_plan(RELEASES[gen], "int8", int8_source=source)
        assert plan.int8_mode == "calibrator" and plan.calibrator == "IInt8EntropyCalibrator2"
        assert plan.calibration_source == source and plan.onnx_input == "source"
        assert plan.builder_flags == ["INT8", "FP16"]  # FP16 too: layers faster in FP16 may use it
        assert plan.warnings == []  # implicit INT8 is not deprecated before 10.1


def test_int8_without_fast_fp16_sets_int8_only():
    plan = make_plan("8.2.1", "int8", int8_source="cache", fast_fp16=False)
    assert plan.builder_flags == ["INT8"]


def test_int8_on_8x_refuses_a_qdq_only_calibration():
    with pytest.raises(EdgeAlexError, match="no cache for it"):
        make_plan("8.5.2", "int8", int8_source="qdq")


def test_int8_on_10_gpu_prefers_qdq_and_keeps_the_calibrator_as_deprecated_fallback():
    qdq = make_plan("10.3.0", "int8", int8_source="qdq")
    assert qdq.int8_mode == "qdq" and qdq.onnx_input == "qdq" and qdq.calibrator is None
    assert qdq.builder_flags == ["INT8", "FP16"] and qdq.network_flags == []
    cache = make_plan("10.3.0", "int8", int8_source="cache")
    assert cache.int8_mode == "calibrator" and cache.onnx_input == "source"
    assert any("deprecated since TensorRT 10.1" in w for w in cache.warnings)
    assert int8_source_preference("10.3.0") == ("qdq", "cache", "images")


def test_int8_on_11_is_qdq_only_without_flags():
    plan = make_plan("11.1.0", "int8", int8_source="qdq")
    assert plan.int8_mode == "qdq" and plan.onnx_input == "qdq"
    assert plan.builder_flags == [] and plan.calibrator is None and plan.strongly_typed
    for source in ("cache", "images"):
        with pytest.raises(EdgeAlexError, match="no calibrator"):
            make_plan("11.1.0", "int8", int8_source=source)
    assert int8_source_preference("11.1.0") == ("qdq",)


def test_int8_without_calibration_is_refused_on_every_generation():
    for release in RELEASES.values():
        with pytest.raises(EdgeAlexError) as err:
            make_plan(release, "int8")
        assert "placeholder" in err.value.what and "edgealex calibrate" in err.value.note


@pytest.mark.parametrize("gen", ["8.2", "8.5", "8.6", "10"])
def test_dla_int8_takes_the_calibrator_on_8x_and_10x(gen):
    plan = make_plan(RELEASES[gen], "int8", dla_core=1, int8_source="cache")
    assert plan.device == "dla1" and plan.device_type == "DLA" and plan.dla_core == 1
    assert plan.int8_mode == "calibrator"
    assert plan.builder_flags == ["INT8", "FP16", "GPU_FALLBACK"] and plan.gpu_fallback
    assert int8_source_preference(RELEASES[gen], dla=True) == ("cache", "images")
    with pytest.raises(EdgeAlexError, match="DLA takes implicit quantization"):
        make_plan(RELEASES[gen], "int8", dla_core=0, int8_source="qdq")


def test_strict_dla_has_no_gpu_fallback_flag():
    plan = make_plan("8.5.2", "fp16", dla_core=0, gpu_fallback=False)
    assert plan.builder_flags == ["FP16"] and not plan.gpu_fallback
    assert any("strict DLA" in d for d in plan.decisions)
    gpu = make_plan("8.5.2", "fp16", gpu_fallback=True)
    assert "GPU_FALLBACK" not in gpu.builder_flags and gpu.gpu_fallback is False  # fallback only means DLA


def test_precision_flags_deprecated_from_10_12():
    assert not make_plan("10.11.0", "fp16").warnings
    assert any("deprecates the FP16/INT8 builder flags" in w for w in make_plan("10.16.1", "fp16").warnings)


def test_timing_cache_and_workspace_validation():
    assert make_plan("8.2.1", "fp16", timing_cache=True).timing_cache
    with pytest.raises(EdgeAlexError, match="positive number of MiB"):
        make_plan("8.2.1", "fp16", workspace_mib=0)
    with pytest.raises(EdgeAlexError, match="older than 8.0"):
        make_plan("7.1.3", "fp16")


def test_plan_is_json_data():
    import json

    data = make_plan("8.5.2", "int8", dla_core=0, int8_source="cache").to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["features"]["memory_pool_limit"] is True and data["features"]["strongly_typed_only"] is False


# --- feature probes -------------------------------------------------------------------------------
# Stand-ins listing the identifiers the real bindings have, per the facts sheet (§1.1; §10.1 lists the
# strings read from the 10.3 / 10.16 / 11.4 binding modules). They exercise the probing logic; the
# probe of a real tensorrt runs in test_build_trt.py on a machine that has it.

def _module(version, network_flags, builder_flags, config_attrs, top_level, verbosity=("DETAILED",)):
    mod = types.SimpleNamespace(__version__=version)
    mod.NetworkDefinitionCreationFlag = type("NetworkDefinitionCreationFlag", (), {n: 0 for n in network_flags})
    mod.BuilderFlag = type("BuilderFlag", (), {n: 0 for n in builder_flags})
    mod.IBuilderConfig = type("IBuilderConfig", (), {n: None for n in config_attrs})
    mod.ProfilingVerbosity = type("ProfilingVerbosity", (), {n: 0 for n in verbosity})
    for name in top_level:
        setattr(mod, name, type(name, (), {}))
    return mod


STAND_INS = {
    "8.2.1.8": _module("8.2.1.8", ["EXPLICIT_BATCH"], ["FP16", "INT8", "GPU_FALLBACK", "STRICT_TYPES"],
                       ["max_workspace_size", "int8_calibrator", "create_timing_cache"], ["IInt8EntropyCalibrator2"]),
    "8.5.2.2": _module("8.5.2.2", ["EXPLICIT_BATCH"], ["FP16", "INT8", "GPU_FALLBACK"],
                       ["max_workspace_size", "set_memory_pool_limit", "int8_calibrator", "create_timing_cache"],
                       ["IInt8EntropyCalibrator2"]),
    "10.3.0": _module("10.3.0", ["EXPLICIT_BATCH", "STRONGLY_TYPED"], ["FP16", "INT8", "GPU_FALLBACK"],
                      ["set_memory_pool_limit", "int8_calibrator", "progress_monitor", "create_timing_cache"],
                      ["IInt8EntropyCalibrator2", "IProgressMonitor"]),
    "11.4.0": _module("11.4.0", ["STRONGLY_TYPED"], ["GPU_FALLBACK"],
                      ["set_memory_pool_limit", "progress_monitor", "create_timing_cache"], ["IProgressMonitor"]),
}


@pytest.mark.parametrize("version", sorted(STAND_INS))
def test_probes_agree_with_the_version_table(version):
    probed = probe_features(STAND_INS[version])
    table = features_for_version(version)
    assert probed == table
    for precision in ("fp32", "fp16"):
        a = make_plan(version, precision, features=probed)
        b = make_plan(version, precision)
        assert (a.network_flags, a.workspace_api, a.builder_flags, a.onnx_input) == \
               (b.network_flags, b.workspace_api, b.builder_flags, b.onnx_input)


def test_a_probe_wins_over_the_table():
    # 10.0 bindings that do have IProgressMonitor: the table only claims it from 10.3.
    mod = _module("10.0.1", ["EXPLICIT_BATCH", "STRONGLY_TYPED"], ["FP16", "INT8"],
                  ["set_memory_pool_limit", "int8_calibrator", "progress_monitor", "create_timing_cache"],
                  ["IInt8EntropyCalibrator2", "IProgressMonitor"])
    assert make_plan("10.0.1", "fp16").progress == "spinner"
    assert make_plan("10.0.1", "fp16", features=probe_features(mod)).progress == "monitor"
    # 10.x keeps EXPLICIT_BATCH only as an ignored enum: the plan never sets it.
    assert make_plan("10.0.1", "fp16", features=probe_features(mod)).network_flags == []
