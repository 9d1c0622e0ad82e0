"""`edgealex targets` and `edgealex targets show` through the real Typer app."""

import json

from typer.testing import CliRunner

from edgealex.cli.main import app

runner = CliRunner()


def test_targets_table():
    result = runner.invoke(app, ["targets"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:4] == ["NAME", "SOC", "ARCH", "DLA"]
    by_name = {line.split()[0]: line.split() for line in lines[1:]}
    assert by_name["agx-xavier"][1:4] == ["tegra194", "sm_72", "2"]
    assert by_name["nano"][3:5] == ["0", "no"]
    assert by_name["cpu"][9] == "ort"
    assert len(by_name) >= 9


def test_targets_json():
    result = runner.invoke(app, ["targets", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    names = [t["name"] for t in data]
    assert "orin-nx-8gb" in names and "desktop-cuda" in names
    nx8 = next(t for t in data if t["name"] == "orin-nx-8gb")
    assert nx8["dla_cores"] == 1 and nx8["calib_cache_version_number"] == 100300


def test_show_text_and_json():
    result = runner.invoke(app, ["targets", "show", "agx-xavier"])
    assert result.exit_code == 0, result.output
    assert "TRT-8502-EntropyCalibration2" in result.output
    assert "sum of rails" in result.output and "notes:" in result.output
    result = runner.invoke(app, ["targets", "show", "agx-xavier", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["name"] == "agx-xavier" and data["dla_cores"] == 2 and data["tensorrt"] == "8.5.2"
    assert data["power_modes"][0] == {"id": 0, "name": "MAXN"}
    assert data["power_total_rail"] is None and data["power_total_is_sum"] is True


def test_show_unknown_is_a_one_line_error():
    result = runner.invoke(app, ["targets", "show", "tx2"])
    assert result.exit_code == 1
    assert "unknown target" in result.output and "agx-xavier" in result.output
    assert "Traceback" not in result.output
