"""jtop's power dictionaries (4.x and 3.x shapes) -> watts, instantaneous values only (never 'avg')."""

import pytest

from edgealex.bench.power.jtop import _rails_3x, _rails_4x


def test_jtop_4x_power_dict_uses_power_not_avg():
    power = {"rail": {"VDD_IN": {"online": True, "type": "INA3221", "status": "ok", "volt": 5040, "curr": 1480,
                                 "power": 7459, "avg": 3000, "warn": 0, "crit": 0},
                      "VDD_SOC": {"online": True, "type": "INA3221", "volt": 5040, "curr": 300, "power": 1512,
                                  "avg": 1000},
                      "NC": {"online": False, "power": 0, "avg": 0}},
             "tot": {"power": 7459, "avg": 3000, "name": "VDD_IN"}}
    rails, total = _rails_4x(power)
    assert rails == {"VDD_IN": pytest.approx(7.459), "VDD_SOC": pytest.approx(1.512)}
    assert total == pytest.approx(7.459)


def test_jtop_3x_tuple():
    rails, total = _rails_3x(({"cur": 4200, "avg": 4000}, {"POM_5V_IN": {"cur": 4200, "avg": 4000},
                                                            "POM_5V_GPU": {"cur": 300, "avg": 250}}))
    assert total == pytest.approx(4.2) and rails["POM_5V_GPU"] == pytest.approx(0.3)
