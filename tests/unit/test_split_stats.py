"""Split-test arithmetic against values computed by hand (shown in each test)."""

import math

import pytest

from partnernet.creatives.splittest import (
    Arm,
    p_value_two_sided,
    two_proportion_z,
    verdict,
    wilson_interval,
)


def test_wilson_interval_of_10_in_100():
    # p = 0.1, z² = 3.8416, denom = 1 + 3.8416/100 = 1.038416
    # centre = (0.1 + 3.8416/200) / 1.038416 = 0.119208 / 1.038416 = 0.114798
    # half = 1.96·√(0.1·0.9/100 + 3.8416/40000) / 1.038416 = 1.96·√0.00099604 / 1.038416 = 0.059569
    low, high = wilson_interval(10, 100, z=1.96)
    assert low == pytest.approx(0.055229, abs=1e-5)
    assert high == pytest.approx(0.174367, abs=1e-5)


def test_wilson_interval_edges():
    low, high = wilson_interval(0, 10, z=1.96)
    # centre = half = (3.8416/20)/(1.38416) = 0.138767: the interval starts at 0
    assert low == pytest.approx(0.0, abs=1e-12) and high == pytest.approx(0.277533, abs=1e-5)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(5, 3)


def test_two_proportion_z_by_hand():
    # 100/1000 vs 150/1000: pooled 0.125, se = √(0.125·0.875·(2/1000)) = 0.0147902, diff 0.05
    z = two_proportion_z(100, 1000, 150, 1000)
    assert z == pytest.approx(0.05 / math.sqrt(0.125 * 0.875 * 0.002))
    assert z == pytest.approx(3.3806, abs=1e-4)
    # p = erfc(3.3806/√2) ≈ 0.000723
    assert p_value_two_sided(z) == pytest.approx(0.000723, abs=2e-6)
    assert p_value_two_sided(1.959963984540054) == pytest.approx(0.05)
    assert two_proportion_z(0, 100, 0, 100) == 0.0


def test_verdict_in_plain_words():
    a, b = Arm("A", 1000, 100), Arm("B", 1000, 150)
    assert verdict(a, b).text == "B converts better, 95% confidence"
    assert verdict(a, b).winner == "B"
    assert verdict(b, a).text == "B converts better, 95% confidence"
    # 100/1000 vs 110/1000: se = √(0.105·0.895·0.002) = √0.00018795 = 0.013710; z = 0.7294
    close = verdict(a, Arm("B", 1000, 110))
    assert close.winner is None and close.text.startswith("no significant difference")
    assert close.z == pytest.approx(0.7294, abs=1e-4)
    assert verdict(Arm("A", 50, 5), Arm("B", 50, 20)).text == "not enough data yet"
