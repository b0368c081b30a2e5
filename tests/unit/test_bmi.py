"""BMI SDS, centile and NCMP category (pupilshare.bmi), with four examples worked by hand.

Each worked example takes UK90's L, M and S for the child's exact age from rcpchgrowth's own table (ages of a whole
number of 16-month steps are exact table entries: 1948 days = 5.3333 years = 64 months, 3896 days = 10.6667 years =
128 months, so no interpolation is involved), then

    BMI = weight / (height / 100) ** 2
    SDS = ((BMI / M) ** L - 1) / (L * S)
    centile = 100 * Phi(SDS)
"""

from __future__ import annotations

import datetime as dt
import math

import pytest
import yaml
from pydantic import ValidationError
from rcpchgrowth import sds_for_measurement
from rcpchgrowth.global_functions import lms_value_array_for_measurement_for_reference

from pupilshare import PROJECT_ROOT, bmi
from pupilshare.bmi import Measured, bmi_results, population_category
from pupilshare.policy import POLICY_PATH, load_policy


def _phi(z: float) -> float:
    return 50 * math.erfc(-z / math.sqrt(2))


def _uk90_lms(sex: str, months: int) -> tuple[float, float, float]:
    table = lms_value_array_for_measurement_for_reference(
        reference="uk-who", age=months / 12, measurement_method="bmi", sex=sex
    )
    (entry,) = [row for row in table if round(row["decimal_age"], 4) == round(months / 12, 4)]
    return entry["L"], entry["M"], entry["S"]


def test_bmi_results__reception_girl_healthy_weight():
    """Girl born 2021-01-10, measured 2026-05-12 (1948 days: 64 months), 110.0 cm, 17.6 kg.

    UK90 girls at 64 months: L = -1.241, M = 15.46, S = 0.09563.
    BMI = 17.6 / 1.10**2 = 14.5455
    SDS = ((14.5455 / 15.46) ** -1.241 - 1) / (-1.241 * 0.09563)
        = (0.94084 ** -1.241 - 1) / -0.118677 = (1.07861 - 1) / -0.118677 = -0.662
    centile = Phi(-0.662) = 25.4  -> above the 2nd, below the 85th: healthy weight
    """
    assert _uk90_lms("female", 64) == (-1.241, 15.46, 0.09563)
    (result,) = bmi_results([Measured(dt.date(2021, 1, 10), dt.date(2026, 5, 12), "F", 110.0, 17.6)])
    assert result.bmi == pytest.approx(14.5455, abs=1e-4)
    assert result.bmi_sds == pytest.approx(-0.6624, abs=1e-4)
    assert result.bmi_centile == pytest.approx(25.39, abs=0.01)
    assert population_category(result.bmi_centile) == "healthy_weight"


def test_bmi_results__reception_boy_obese():
    """Boy born 2021-03-05, measured 2026-07-05 (1948 days: 64 months), 108.0 cm, 21.5 kg.

    UK90 boys at 64 months: L = -1.536, M = 15.517, S = 0.07983.
    BMI = 21.5 / 1.08**2 = 18.4328
    SDS = ((18.4328 / 15.517) ** -1.536 - 1) / (-1.536 * 0.07983)
        = (1.18791 ** -1.536 - 1) / -0.122619 = (0.76760 - 1) / -0.122619 = 1.895
    centile = Phi(1.895) = 97.1  -> at or above the 95th, below the 99.6th: obese
    """
    assert _uk90_lms("male", 64) == (-1.536, 15.517, 0.07983)
    (result,) = bmi_results([Measured(dt.date(2021, 3, 5), dt.date(2026, 7, 5), "M", 108.0, 21.5)])
    assert result.bmi_sds == pytest.approx(1.8953, abs=1e-4)
    assert result.bmi_centile == pytest.approx(97.10, abs=0.01)
    assert population_category(result.bmi_centile) == "obese"


def test_bmi_results__year6_boy_overweight():
    """Boy born 2016-02-01, measured 2026-10-02 (3896 days: 128 months), 140.0 cm, 40.5 kg.

    UK90 boys at 128 months: L = -1.846, M = 16.727, S = 0.11143.
    BMI = 40.5 / 1.40**2 = 20.6633
    SDS = ((20.6633 / 16.727) ** -1.846 - 1) / (-1.846 * 0.11143)
        = (1.23532 ** -1.846 - 1) / -0.205700 = (0.67697 - 1) / -0.205700 = 1.570
    centile = Phi(1.570) = 94.2  -> at or above the 85th, below the 95th: overweight
    """
    assert _uk90_lms("male", 128) == (-1.846, 16.727, 0.11143)
    (result,) = bmi_results([Measured(dt.date(2016, 2, 1), dt.date(2026, 10, 2), "M", 140.0, 40.5)])
    assert result.bmi_sds == pytest.approx(1.5704, abs=1e-4)
    assert result.bmi_centile == pytest.approx(94.18, abs=0.01)
    assert population_category(result.bmi_centile) == "overweight"


def test_bmi_results__year6_girl_underweight():
    """Girl born 2016-01-20, measured 2026-09-20 (3896 days: 128 months), 150.0 cm, 30.0 kg.

    UK90 girls at 128 months: L = -1.329, M = 17.277, S = 0.12725.
    BMI = 30.0 / 1.50**2 = 13.3333
    SDS = ((13.3333 / 17.277) ** -1.329 - 1) / (-1.329 * 0.12725)
        = (0.77174 ** -1.329 - 1) / -0.169115 = (1.41108 - 1) / -0.169115 = -2.431
    centile = Phi(-2.431) = 0.75  -> at or below the 2nd: underweight
    """
    assert _uk90_lms("female", 128) == (-1.329, 17.277, 0.12725)
    (result,) = bmi_results([Measured(dt.date(2016, 1, 20), dt.date(2026, 9, 20), "F", 150.0, 30.0)])
    assert result.bmi_sds == pytest.approx(-2.4308, abs=1e-4)
    assert result.bmi_centile == pytest.approx(0.753, abs=0.001)
    assert population_category(result.bmi_centile) == "underweight"


@pytest.mark.parametrize(
    ("centile", "category"),
    [
        (0.0, "underweight"),
        (2.0, "underweight"),
        (2.0000001, "healthy_weight"),
        (84.9999999, "healthy_weight"),
        (85.0, "overweight"),
        (94.9999999, "overweight"),
        (95.0, "obese"),
        (99.5999999, "obese"),
        (99.6, "severely_obese"),
        (100.0, "severely_obese"),
    ],
)
def test_population_category__bounds_are_inclusive(centile, category):
    assert population_category(centile) == category


def test_bmi_results__cached_lookup_equals_rcpchgrowth_public_function():
    """The load's cached LMS path gives rcpchgrowth's own sds_for_measurement to the last bit, over NCMP ages."""
    born = dt.date(2015, 9, 1)
    cases = []
    for days in range(1500, 4500, 37):
        for sex in ("M", "F"):
            height = 95 + days / 45
            cases.append(Measured(born, born + dt.timedelta(days=days), sex, height, 16 * (height / 100) ** 2))
    for item, result in zip(cases, bmi_results(cases), strict=True):
        age = (item.measurement_date - item.date_of_birth).days / 365.25
        expected = sds_for_measurement("uk-who", age, "bmi", result.bmi, bmi.SEXES[item.sex])
        assert result.bmi_sds == expected
        assert result.bmi_centile == pytest.approx(_phi(expected), abs=1e-9)


def test_bmi_results__unclassifiable_measurements_say_why():
    born = dt.date(2016, 1, 1)
    on = dt.date(2026, 11, 1)
    results = bmi_results(
        [
            Measured(dt.date(2000, 1, 1), on, "M", 145.0, 38.0),  # 26 years old: no UK90 data
            Measured(born, on, "M", 80.0, 25.0),  # 80 cm at 10: height beyond -8 SDS
            Measured(born, on, "F", 145.0, 8.0),  # 8 kg at 10: weight beyond -8 SDS
            Measured(born, on, "X", 145.0, 38.0),
            Measured(born, on, "F", 145.0, 38.0),  # fine
        ]
    )
    reasons = [result.unclassified_reason for result in results]
    assert "above the age of 20 years" in reasons[0]
    assert reasons[1].startswith("height 80.0 cm is -")
    assert reasons[2].startswith("weight 8.0 kg is -")
    assert "not M or F" in reasons[3]
    assert reasons[4] is None and results[4].bmi_centile is not None
    assert all(result.bmi_sds is None and result.bmi_centile is None for result in results[:4])


def test_bmi_results__nothing_in_nothing_out():
    assert bmi_results([]) == []


def test_dbt_vars__category_thresholds_equal_pupilshare_bmi():
    """The SQL's thresholds (dbt vars) and the gate's (pupilshare.bmi) are the same national definitions."""
    variables = yaml.safe_load((PROJECT_ROOT / "dbt_project" / "dbt_project.yml").read_text(encoding="utf-8"))["vars"]
    assert variables["ncmp_underweight_at_or_below_centile"] == bmi.UNDERWEIGHT_AT_OR_BELOW_CENTILE
    assert variables["ncmp_overweight_at_or_above_centile"] == bmi.OVERWEIGHT_AT_OR_ABOVE_CENTILE
    assert variables["ncmp_obese_at_or_above_centile"] == bmi.OBESE_AT_OR_ABOVE_CENTILE
    assert variables["ncmp_severely_obese_at_or_above_centile"] == bmi.SEVERELY_OBESE_AT_OR_ABOVE_CENTILE


@pytest.mark.parametrize(
    ("recipient_id", "opt_out"),
    [("health", {"scope": "ncmp", "effect": "exclude"}), ("yss", {"scope": "yss", "effect": "not_measured"})],
)
def test_load_policy__not_measured_goes_with_ncmp_only(tmp_path, recipient_id, opt_out):
    raw = yaml.safe_load(POLICY_PATH.read_text(encoding="utf-8"))
    raw["recipients"][recipient_id]["opt_out"] = opt_out
    path = tmp_path / "recipients.yml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(ValidationError, match="scope ncmp"):
        load_policy(path)


def test_load_policy__health_opt_out_is_not_measured():
    health = load_policy().recipient("health")
    assert health.opt_out is not None and (health.opt_out.scope, health.opt_out.effect) == ("ncmp", "not_measured")
    assert health.cohort.nc_years == ("R", "6")
    assert "height and weight of individual pupils" in health.notice_clause
