"""Target profiles: every built-in profile loads and validates; the capability rules refuse what they must."""

import json
import os

import pytest
from packaging.version import Version

from edgealex.errors import EdgeAlexError
from edgealex.target import (
    PRECISIONS, Target, list_targets, load_target, target_names, targets_dir, trt_version_number,
)

REQUIRED = ["nano", "xavier-nx", "agx-xavier", "orin-nano", "orin-nx-8gb", "orin-nx-16gb", "agx-orin",
            "desktop-cuda", "cpu"]


def test_all_required_profiles_exist_and_load():
    names = target_names()
    for name in REQUIRED:
        assert name in names
    targets = list_targets()
    assert [t.name for t in targets] == names
    for target in targets:
        assert isinstance(target, Target)
        assert target.input_size == 224
        assert target.default_precision in target.precisions
        assert set(target.precisions) <= set(PRECISIONS)
        assert target.dla_cores >= 0
        assert os.path.basename(target.source) == target.name + ".toml"
        # the default camera pipeline formats with the default placeholders
        assert "{" not in target.format_camera_pipeline()
        json.dumps(target.to_dict())


@pytest.mark.parametrize("name,dla,int8,trt,python,number", [
    ("nano", 0, False, "8.2.1", "3.6", 8201),
    ("agx-xavier", 2, True, "8.5.2", "3.8", 8502),
    ("xavier-nx", 2, True, "8.5.2", "3.8", 8502),
    ("orin-nano", 0, True, "10.3.0", "3.10", 100300),
    ("orin-nx-8gb", 1, True, "10.3.0", "3.10", 100300),
    ("orin-nx-16gb", 2, True, "10.3.0", "3.10", 100300),
    ("agx-orin", 2, True, "10.3.0", "3.10", 100300),
])
def test_jetson_facts(name, dla, int8, trt, python, number):
    target = load_target(name)
    assert target.kind == "jetson"
    assert target.dla_cores == dla
    assert target.fast_int8 is int8
    assert target.tensorrt == trt and target.trt_version() == Version(trt)
    assert target.python == python
    assert target.calib_cache_version_number() == number
    assert target.backend == "tensorrt"
    assert target.power_total_is_sum == (target.power_total_rail is None)


def test_power_and_soc_details():
    nano = load_target("nano")
    assert nano.soc == "tegra210" and nano.cuda_arch == "5.3" and nano.memory_gb == 4.0
    assert nano.power_modes == ((0, "MAXN"), (1, "5W")) and nano.power_mode_name(1) == "5W"
    assert nano.power_total_rail == "POM_5V_IN"
    xavier = load_target("agx-xavier")
    assert xavier.soc == "tegra194" and xavier.jetpack == "5.1" and xavier.l4t == "35.2.1"
    assert xavier.power_total_rail is None and xavier.power_total_is_sum
    assert xavier.power_mode_name(0) == "MAXN" and xavier.power_mode_name(99) is None
    assert load_target("orin-nx-16gb").power_total_rail == "VDD_IN"
    cpu = load_target("cpu")
    assert cpu.kind == "cpu" and cpu.backend == "ort" and cpu.tensorrt is None
    assert cpu.trt_version() is None and cpu.calib_cache_version_number() is None
    assert cpu.default_precision == "fp32"
    # where the facts sheet is not sure, the profile says so
    assert any("UNVERIFIED" in note for note in xavier.notes)


def test_version_numbers():
    assert trt_version_number("8.2.1") == 8201
    assert trt_version_number("8.2.5") == 8205
    assert trt_version_number("8.6.0") == 8600
    assert trt_version_number("10.3.0") == 100300
    assert trt_version_number("10.9") == 100900
    assert trt_version_number(Version("8.5.2.2")) == 8502


def test_unknown_name_lists_valid_names():
    with pytest.raises(EdgeAlexError) as info:
        load_target("jetson-tx2")
    assert "agx-xavier" in info.value.note and "nano" in info.value.note


# -- capability rules -----------------------------------------------------------------------------

def test_int8_on_nano_refused_unless_forced():
    nano = load_target("nano")
    with pytest.raises(EdgeAlexError) as info:
        nano.check_precision("int8")
    assert "no fast INT8" in info.value.what and "--precision fp16" in info.value.note
    warnings = nano.check_precision("int8", force=True)
    assert len(warnings) == 1 and "forced" in warnings[0]
    assert nano.check_precision("fp16") == []
    assert load_target("agx-xavier").check_precision("int8") == []


def test_unknown_and_unoffered_precision():
    with pytest.raises(EdgeAlexError, match="unknown precision"):
        load_target("agx-xavier").check_precision("bf16")
    with pytest.raises(EdgeAlexError, match="not offered"):
        load_target("cpu").check_precision("fp16")


@pytest.mark.parametrize("name", ["nano", "orin-nano", "desktop-cuda", "cpu"])
def test_dla_refused_without_dla(name):
    with pytest.raises(EdgeAlexError, match="has no DLA"):
        load_target(name).check_dla(0, "fp16")


def test_dla_rules():
    xavier = load_target("agx-xavier")
    xavier.check_dla(None, "fp32", static_shapes=False)  # GPU build: nothing to check
    xavier.check_dla(0, "fp16")
    xavier.check_dla(1, "int8")
    with pytest.raises(EdgeAlexError, match="does not exist") as info:
        xavier.check_dla(2, "fp16")
    assert "0, 1" in info.value.note
    with pytest.raises(EdgeAlexError, match="does not exist"):
        xavier.check_dla(-1, "fp16")
    with pytest.raises(EdgeAlexError, match="does not exist"):
        load_target("orin-nx-8gb").check_dla(1, "fp16")
    with pytest.raises(EdgeAlexError, match="only FP16 or INT8"):
        xavier.check_dla(0, "fp32")
    with pytest.raises(EdgeAlexError, match="dynamic shapes"):
        xavier.check_dla(0, "fp16", static_shapes=False)


# -- validation of broken profiles -----------------------------------------------------------------

def _write_variant(tmp_path, base, replace_from, replace_to, name="broken.toml"):
    text = open(os.path.join(targets_dir(), base + ".toml")).read()
    assert replace_from in text, replace_from
    path = tmp_path / name
    path.write_text(text.replace(replace_from, replace_to, 1))
    return str(path)


@pytest.mark.parametrize("base,old,new,field,words", [
    ("agx-xavier", "dla_cores = 2", "dla_cores = -1", "hardware.dla_cores", ">= 0"),
    ("agx-xavier", "dla_cores = 2", 'dla_cores = "2"', "hardware.dla_cores", "an integer"),
    ("agx-xavier", "fast_int8 = true", "fast_int8 = 1", "hardware.fast_int8", "true or false"),
    ("agx-xavier", 'default_precision = "fp16"', 'default_precision = "fp8"', "build.default_precision",
     "unknown precision"),
    ("agx-xavier", '"fp32", "fp16", "int8"', '"fp32", "fp16", "int4"', "build.precisions", "unknown precision"),
    ("nano", 'default_precision = "fp16"', 'default_precision = "int8"', "build.default_precision",
     "without fast INT8"),
    ("cpu", 'default_precision = "fp32"', 'default_precision = "fp16"', "build.default_precision",
     "not in build.precisions"),
    ("agx-xavier", 'tensorrt = "8.5.2"', 'tensorrt = "eight"', "software.tensorrt", "not a version"),
    ("agx-xavier", 'backend = "tensorrt"', 'backend = "onnx"', "software.backend", "not one of"),
    ("agx-xavier", 'kind = "jetson"', 'kind = "phone"', "kind", "not one of"),
    ("agx-xavier", "input_size = 224", "input_size = 224\ncolour = 1", "build.colour", "unknown key"),
    ("nano", 'total_rail = "POM_5V_IN"', 'total_rail = "VDD_IN"', "power.total_rail", "not one of power.rails"),
    ("nano", '{ id = 1, name = "5W" }', '{ id = 0, name = "5W" }', "power.modes", "duplicate"),
    ("cpu", "dla_cores = 0", "dla_cores = 1", "hardware.dla_cores", "only Jetson"),
    ("agx-xavier", 'soc = "tegra194"\ncuda_arch', "cuda_arch", "hardware.soc", "must set it"),
    ("cpu", 'pipeline = "v4l2src device=/dev/video{device}', 'pipeline = "v4l2src device=/dev/video{dev}',
     "camera.pipeline", "placeholder"),
])
def test_invalid_profiles_name_file_and_field(tmp_path, base, old, new, field, words):
    path = _write_variant(tmp_path, base, old, new)
    with pytest.raises(EdgeAlexError) as info:
        load_target(path)
    assert info.value.subject == f"{path} [{field}]"
    assert words in info.value.what


def test_missing_field_and_bad_toml(tmp_path):
    path = _write_variant(tmp_path, "agx-xavier", "memory_gb = 32.0\n", "")
    with pytest.raises(EdgeAlexError, match="missing") as info:
        load_target(path)
    assert "hardware.memory_gb" in info.value.subject
    bad = tmp_path / "syntax.toml"
    bad.write_text("name = \n")
    with pytest.raises(EdgeAlexError, match="not valid TOML"):
        load_target(str(bad))
    with pytest.raises(EdgeAlexError, match="cannot read"):
        load_target(str(tmp_path / "absent.toml"))


def test_custom_profile_by_path_and_env_dir(tmp_path, monkeypatch):
    path = _write_variant(tmp_path, "agx-xavier", 'name = "agx-xavier"', 'name = "my-xavier"', "my-xavier.toml")
    target = load_target(path)
    assert target.name == "my-xavier" and target.dla_cores == 2
    monkeypatch.setenv("EDGEALEX_TARGETS_DIR", str(tmp_path))
    assert target_names() == ["my-xavier"]
    assert load_target("my-xavier").source.endswith("my-xavier.toml")
    # a built-in file whose name field disagrees with its file name is refused
    os.rename(path, str(tmp_path / "other.toml"))
    with pytest.raises(EdgeAlexError, match="but the file is other.toml"):
        load_target("other")


def test_packaged_profiles_are_the_checkout_files():
    """edgealex/data/targets (package data) resolves to the one copy in targets/."""
    import edgealex

    packaged = os.path.join(os.path.dirname(edgealex.__file__), "data", "targets")
    for name in REQUIRED:
        assert os.path.isfile(os.path.join(packaged, name + ".toml"))
    checkout_copy = os.path.join(os.path.dirname(os.path.dirname(edgealex.__file__)), "targets")
    if os.path.isdir(checkout_copy):  # a git checkout: one copy of the files, reached through a link
        assert os.path.islink(packaged)
        assert os.path.realpath(packaged) == os.path.realpath(checkout_copy)
