"""Split-test statistics, pure and hand-checkable: Wilson intervals and the two-proportion z-test.

No float touches money here: these are rates of counts (conversions / clicks).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Two-sided z for 95% confidence.
Z95 = 1.959963984540054
#: Below this many clicks per arm, or conversions in total, no verdict is given.
MIN_CLICKS = 100
MIN_CONVERSIONS = 10


def wilson_interval(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion (https://en.wikipedia.org/wiki/Binomial_proportion_confidence_interval)."""
    if trials <= 0:
        return (0.0, 1.0)
    if successes < 0 or successes > trials:
        raise ValueError("successes must be between 0 and trials")
    p = successes / trials
    z2 = z * z
    denom = 1 + z2 / trials
    centre = (p + z2 / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def two_proportion_z(s1: int, n1: int, s2: int, n2: int) -> float:
    """z statistic of p2 − p1 with the pooled standard error; 0 when undefined."""
    if n1 <= 0 or n2 <= 0:
        return 0.0
    pooled = (s1 + s2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 0.0
    return (s2 / n2 - s1 / n1) / se


def p_value_two_sided(z: float) -> float:
    """Two-sided p-value of a standard normal statistic."""
    return math.erfc(abs(z) / math.sqrt(2))


@dataclass(frozen=True)
class Arm:
    """One variant's counts."""

    name: str
    clicks: int
    conversions: int


@dataclass(frozen=True)
class Verdict:
    """The comparison of the best arm against the control, in plain words."""

    winner: str | None
    z: float
    p_value: float
    text: str


def verdict(control: Arm, challenger: Arm, confidence: float = 0.95) -> Verdict:
    """Plain-words verdict of challenger vs control: "B converts better, 95% confidence" or
    "not enough data yet" / "no significant difference yet"."""
    if (min(control.clicks, challenger.clicks) < MIN_CLICKS
            or control.conversions + challenger.conversions < MIN_CONVERSIONS):
        return Verdict(None, 0.0, 1.0, "not enough data yet")
    z = two_proportion_z(control.conversions, control.clicks, challenger.conversions, challenger.clicks)
    p = p_value_two_sided(z)
    level = round(confidence * 100)
    if p < 1 - confidence:
        better = challenger if z > 0 else control
        return Verdict(better.name, z, p, f"{better.name} converts better, {level}% confidence")
    return Verdict(None, z, p, f"no significant difference yet at {level}% confidence")
