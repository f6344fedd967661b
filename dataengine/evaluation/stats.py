"""Success rates with honest uncertainty: Wilson intervals, the paired difference of two policies (Newcombe's
hybrid score interval) and McNemar's exact test.

Why these: with the 200 episodes an evaluation can afford, a rate near 0 % or 100 % (the users' VLAs at 0 %, ACT
at 100 % on 157 demos) makes the textbook Wald interval collapse to zero width or leave [0, 1]; Wilson's does not.
Two policies evaluated on the SAME scenes are paired: what matters is only the scenes where exactly one of them
succeeds (``b``, ``c``), so McNemar's exact binomial test on those and Newcombe's interval (method 10 of Newcombe
1998, "Improved confidence intervals for the difference between binomial proportions based on paired data"), which
uses the pairing's correlation, are far tighter than treating the two runs as independent samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.959963984540054
"""The two-sided 95 % standard normal quantile."""


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion; (0, 1) when there are no trials."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    low = 0.0 if successes == 0 else max(0.0, centre - half)  # exact ends: rounding must not move them off 0 / 1
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


@dataclass(frozen=True)
class PairedCounts:
    """Outcomes of policies A and B on the same scenes: both succeed, only A, only B, neither."""

    both: int
    only_a: int
    only_b: int
    neither: int

    @classmethod
    def of(cls, a: list[bool], b: list[bool]) -> "PairedCounts":
        if len(a) != len(b):
            raise ValueError(f"paired outcomes need the same scenes: {len(a)} vs {len(b)}")
        pairs = list(zip(a, b))
        return cls(pairs.count((True, True)), pairs.count((True, False)), pairs.count((False, True)),
                   pairs.count((False, False)))

    @property
    def n(self) -> int:
        return self.both + self.only_a + self.only_b + self.neither


def mcnemar_exact_p(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar test: under "A and B are equally good", the discordant scenes split as a fair coin."""
    discordant = only_a + only_b
    if discordant == 0:
        return 1.0
    tail = sum(math.comb(discordant, i) for i in range(min(only_a, only_b) + 1)) / 2**discordant
    return min(1.0, 2 * tail)


def paired_difference_interval(counts: PairedCounts, z: float = Z95) -> tuple[float, float]:
    """Newcombe's square-and-add interval for rate(A) - rate(B) on paired data: the two Wilson intervals combined
    with the pairing's correlation (as in Fagerland, Lydersen & Laake, "Statistical Analysis of Contingency
    Tables", ch. 8, whose worked example the tests reproduce)."""
    n = counts.n
    if n == 0:
        return -1.0, 1.0
    a, b, c, d = counts.both, counts.only_a, counts.only_b, counts.neither
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson_interval(a + b, n, z)
    l2, u2 = wilson_interval(a + c, n, z)
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    phi = _correlation(a * d - b * c, margins, n)
    difference = p1 - p2
    lower = difference - math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    upper = difference + math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    return max(-1.0, lower), min(1.0, upper)


def _correlation(cross: int, margins: int, n: int) -> float:
    """Newcombe's estimate of the correlation of the two paired rates: ``(ad - bc) / sqrt(margins)``, shrunk by
    ``n / 2`` when positive (and 0 for a positive ``ad - bc`` below that), 0 when a margin is empty."""
    if margins <= 0:
        return 0.0
    if cross > n / 2:
        return (cross - n / 2) / math.sqrt(margins)
    return 0.0 if cross >= 0 else cross / math.sqrt(margins)


@dataclass(frozen=True)
class ReplicatedDifference:
    """Mean success of replicate group A minus group B on the same scenes, with its 95 % interval and p-value."""

    difference: float
    ci95: tuple[float, float]
    p: float
    scenes: int


def replicated_paired_difference(a_runs: list[list[bool]], b_runs: list[list[bool]],
                                 z: float = Z95) -> ReplicatedDifference:
    """Policies trained several times each (replicate trainings, different seeds), all evaluated on the same scenes.

    Why not McNemar: one training per arm cannot separate arms 5-10 points apart (the same recipe moved 10 points
    between trainings, docs/benchmarks.md), so the unit of evidence becomes the scene: ``d_s`` = mean success of A's
    replicates on scene s minus B's. The mean of the ``d_s`` is the difference of the pooled rates; its interval
    is the normal one over scenes (the ``d_s`` are independent across scenes, bounded in [-1, 1], and 200 of them
    make the mean close to normal), and the two-sided p-value the matching z-test. With one replicate per group this
    is the paired difference of two rates with the scene as the pair, a little wider than Newcombe's interval."""
    if not a_runs or not b_runs:
        raise ValueError("each group needs at least one evaluated replicate")
    scenes = {len(run) for run in (*a_runs, *b_runs)}
    if len(scenes) != 1:
        raise ValueError(f"replicates must be evaluated on the same scenes, got runs of {sorted(scenes)} episodes")
    n = scenes.pop()
    if n == 0:
        return ReplicatedDifference(0.0, (-1.0, 1.0), 1.0, 0)
    per_scene = [sum(run[s] for run in a_runs) / len(a_runs) - sum(run[s] for run in b_runs) / len(b_runs)
                 for s in range(n)]
    mean = sum(per_scene) / n
    variance = sum((d - mean) ** 2 for d in per_scene) / (n - 1) if n > 1 else 0.0
    error = math.sqrt(variance / n)
    if error == 0.0:
        return ReplicatedDifference(mean, (mean, mean), 1.0 if mean == 0 else 0.0, n)
    p = math.erfc(abs(mean) / error / math.sqrt(2))
    return ReplicatedDifference(mean, (max(-1.0, mean - z * error), min(1.0, mean + z * error)), p, n)
