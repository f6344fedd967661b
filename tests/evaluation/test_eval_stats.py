"""The evaluation's statistics against independent oracles: a published worked example, brute-force binomial sums
and the defining score equation, never the module's own formulas."""

from __future__ import annotations

import math

import pytest

from so101_dataengine.evaluation.stats import (
    Z95,
    PairedCounts,
    mcnemar_exact_p,
    paired_difference_interval,
    replicated_paired_difference,
    wilson_interval,
)


def _score_bound(successes: int, n: int, lower: bool) -> float:
    """The Wilson bound from its definition: the p at which (phat - p)^2 = z^2 p (1 - p) / n, found by bisection."""
    phat = successes / n
    lo, hi = (0.0, phat) if lower else (phat, 1.0)
    for _ in range(200):
        mid = (lo + hi) / 2
        outside = (phat - mid) ** 2 > Z95**2 * mid * (1 - mid) / n
        if lower:
            lo, hi = (mid, hi) if outside else (lo, mid)
        else:
            lo, hi = (lo, mid) if outside else (mid, hi)
    return (lo + hi) / 2


@pytest.mark.parametrize("successes,n", [(0, 20), (1, 20), (146, 200), (200, 200), (164, 200), (3, 7)])
def test_wilson_interval_solves_the_score_equation(successes, n):
    low, high = wilson_interval(successes, n)
    assert low == pytest.approx(_score_bound(successes, n, lower=True), abs=1e-9)
    assert high == pytest.approx(_score_bound(successes, n, lower=False), abs=1e-9)
    assert 0 <= low <= successes / n <= high <= 1


def test_wilson_interval_at_zero_and_all_successes_is_not_degenerate():
    """The users' VLAs were at 0 %: the interval must still say how much 0 of 200 rules out."""
    low, high = wilson_interval(0, 200)
    assert low == 0 and 0.015 < high < 0.02
    low, high = wilson_interval(200, 200)
    assert high == 1 and 0.98 < low < 0.985


def test_paired_interval_reproduces_the_textbook_example():
    """Fagerland, Lydersen & Laake, ch. 8 (Cavo et al. 2012, 161 patients): -0.0621, 95 % CI -0.1186 to -0.0046."""
    counts = PairedCounts(both=59, only_a=6, only_b=16, neither=80)
    low, high = paired_difference_interval(counts)
    assert (round(low, 4), round(high, 4)) == (-0.1186, -0.0046)


def test_mcnemar_exact_matches_a_brute_force_binomial_and_the_textbook():
    assert mcnemar_exact_p(6, 16) == pytest.approx(0.052479, abs=1e-6)  # the same example's exact conditional test
    for only_a, only_b in [(0, 0), (0, 5), (3, 3), (10, 2), (40, 61)]:
        total = only_a + only_b
        probabilities = [math.comb(total, k) / 2**total for k in range(total + 1)]
        observed = probabilities[only_a]  # two-sided: every split at most as likely as the observed one
        brute = sum(p for p in probabilities if p <= observed * (1 + 1e-12)) if total else 1.0
        assert mcnemar_exact_p(only_a, only_b) == pytest.approx(min(1.0, brute), abs=1e-12)


def test_pairing_counts_only_discordant_scenes():
    a = [True, True, False, False, True]
    b = [True, False, True, False, False]
    assert PairedCounts.of(a, b) == PairedCounts(both=1, only_a=2, only_b=1, neither=1)
    with pytest.raises(ValueError, match="same scenes"):
        PairedCounts.of(a, b[:-1])


def test_identical_policies_differ_by_zero_with_an_interval_around_it():
    counts = PairedCounts(both=120, only_a=0, only_b=0, neither=80)
    low, high = paired_difference_interval(counts)
    assert low < 0 < high and high - low < 0.05
    assert mcnemar_exact_p(0, 0) == 1.0


def test_replicated_difference_is_the_pooled_difference_and_its_interval_covers_the_truth():
    """Replicate trainings on the same scenes (payoff experiment): the difference is that of the pooled rates, and
    over many simulated experiments with scene-dependent difficulty (scenes that every training finds hard or easy,
    as in the real evaluations) the 95 % interval holds the true difference about 95 % of the time."""
    import random

    rng = random.Random(7)
    a = [[rng.random() < 0.4 for _ in range(50)] for _ in range(3)]
    b = [[rng.random() < 0.2 for _ in range(50)] for _ in range(2)]
    pooled = sum(map(sum, a)) / 150 - sum(map(sum, b)) / 100
    assert replicated_paired_difference(a, b).difference == pytest.approx(pooled)

    covered, trials, n = 0, 400, 200
    for _ in range(trials):
        easy = [rng.random() for _ in range(n)]  # per-scene difficulty shared by both groups' trainings
        p_a = [min(1.0, 0.6 * e + 0.1) for e in easy]
        p_b = [0.6 * e for e in easy]
        truth = sum(pa - pb for pa, pb in zip(p_a, p_b)) / n
        runs_a = [[rng.random() < p for p in p_a] for _ in range(3)]
        runs_b = [[rng.random() < p for p in p_b] for _ in range(3)]
        low, high = replicated_paired_difference(runs_a, runs_b).ci95
        covered += low <= truth <= high
    assert 0.92 <= covered / trials <= 0.98, covered / trials


def test_replicated_difference_of_identical_groups_is_not_significant_and_refuses_unpaired_runs():
    same = [[True, False, True, False]] * 2
    result = replicated_paired_difference(same, same)
    assert result.difference == 0 and result.p == 1.0 and result.scenes == 4
    clear = replicated_paired_difference([[True] * 100], [[False] * 50 + [True] * 50])
    assert clear.difference == pytest.approx(0.5) and clear.p < 1e-6 and clear.ci95[0] > 0.3
    with pytest.raises(ValueError, match="same scenes"):
        replicated_paired_difference([[True] * 3], [[True] * 4])
