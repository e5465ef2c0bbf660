"""The statistics, on simulated data from known rates (results/stats.py).

Each scenario is 200 independent simulated campaigns; the bounds are the issue's: with a true 20 %
lift and enough impressions the true winner is called with P(best) >= 0.95 in at least 90 % of runs;
with no difference (A/A) a winner is declared in at most 5 %.
"""

from __future__ import annotations

import numpy as np
import pytest

from results.stats import Counts, analyse, fit_prior

RUNS = 200
DRAWS = 4000  # per analysis; 20,000 on pages, fewer here to keep 200 runs quick


def _simulate(rates: list[float], impressions: int, rng: np.random.Generator, run: int):
    counts = [
        Counts(
            key=str(i),
            trials=impressions,
            successes=int(rng.binomial(impressions, rate)),
        )
        for i, rate in enumerate(rates)
    ]
    return analyse(counts, draws=DRAWS, seed=run)


@pytest.mark.parametrize("variants", [2, 4])
def test_a_true_20_percent_lift_is_found(variants: int) -> None:
    rng = np.random.default_rng(20)
    rates = [0.02] * (variants - 1) + [0.024]
    best = str(variants - 1)
    found = sum(
        _simulate(rates, 50_000, rng, run).winner == best for run in range(RUNS)
    )
    assert found >= 0.9 * RUNS, f"the true winner was called in {found} of {RUNS} runs"


@pytest.mark.parametrize("variants", [2, 4, 8])
def test_no_difference_rarely_crowns_a_winner(variants: int) -> None:
    rng = np.random.default_rng(7)
    declared = sum(
        _simulate([0.02] * variants, 50_000, rng, run).winner is not None
        for run in range(RUNS)
    )
    assert declared <= 0.05 * RUNS, (
        f"an A/A winner was declared in {declared} of {RUNS} runs"
    )


def test_too_early_until_every_variant_has_the_minimum() -> None:
    analysis = analyse(
        [Counts("a", 5000, 400), Counts("b", 500, 2)], min_trials=1000, draws=2000
    )
    assert analysis.too_early
    assert analysis.winner is None
    # The figures are still computed (the page shows them, marked as early).
    assert analysis.variants[0].p_best > analysis.variants[1].p_best


def test_shrinkage_pulls_a_lucky_small_variant_towards_the_batch_mean() -> None:
    """Seven variants at 2 % on 20,000 impressions, and one at 2.8 % on 1,200 (about 2 standard
    errors up: the kind of luck one of eight variants often has)."""
    counts = [Counts(str(i), 20_000, 400) for i in range(7)] + [
        Counts("lucky", 1200, 34)
    ]
    analysis = analyse(counts, min_trials=1000, draws=4000)
    lucky = analysis.variants[-1]
    assert lucky.rate == pytest.approx(34 / 1200)
    # At least half of the distance to the batch's 2 % is taken back.
    assert lucky.mean - 0.02 < (lucky.rate - 0.02) / 2
    assert analysis.winner is None


def test_alike_variants_get_a_strong_prior_and_different_ones_a_weak_one() -> None:
    alike = [Counts(str(i), 10_000, 200) for i in range(4)]
    different = [Counts(str(i), 10_000, 100 + 100 * i) for i in range(4)]
    assert sum(fit_prior(alike)) > 100 * sum(fit_prior(different))


def test_expected_loss_is_smallest_for_the_leader() -> None:
    analysis = analyse(
        [Counts("a", 40_000, 800), Counts("b", 40_000, 1000), Counts("c", 40_000, 880)],
        draws=4000,
    )
    by_key = {v.key: v for v in analysis.variants}
    assert analysis.winner == "b"
    assert (
        by_key["b"].expected_loss
        < by_key["c"].expected_loss
        < by_key["a"].expected_loss
    )
    assert sum(v.p_best for v in analysis.variants) == pytest.approx(1.0)


def test_per_axis_effects_recover_a_known_main_effect_in_a_2x2x2_design() -> None:
    """Headline B lifts CTR by 25 % whatever the background and the seed; background and seed do
    nothing. The headline axis is decided for B; the others stay undecided."""
    rng = np.random.default_rng(3)
    counts = []
    for headline in ("A", "B"):
        for background in ("marble", "cafe"):
            for seed in ("11", "22"):
                rate = 0.02 * (1.25 if headline == "B" else 1.0)
                counts.append(
                    Counts(
                        key=f"{headline}-{background}-{seed}",
                        trials=30_000,
                        successes=int(rng.binomial(30_000, rate)),
                        axes={
                            "var:headline": headline,
                            "var:background": background,
                            "seed": seed,
                        },
                    )
                )
    analysis = analyse(counts, draws=8000)
    axes = {a.axis: a for a in analysis.axes}
    assert set(axes) == {"var:headline", "var:background", "seed"}
    headline = axes["var:headline"]
    assert headline.decided and headline.best == "B"
    assert {v.value: v for v in headline.values}["B"].p_best >= 0.95
    assert not axes["var:background"].decided
    assert not axes["seed"].decided
    # No interaction was built in, and none of the size worth a look is reported.
    assert all(abs(i.residual) < 0.004 for i in analysis.interactions)


def test_an_interaction_is_reported() -> None:
    """Headline B works only on the marble background: a crossed interaction."""
    rng = np.random.default_rng(5)
    counts = []
    for headline in ("A", "B"):
        for background in ("marble", "cafe"):
            rate = 0.03 if (headline, background) == ("B", "marble") else 0.02
            counts.append(
                Counts(
                    key=f"{headline}-{background}",
                    trials=60_000,
                    successes=int(rng.binomial(60_000, rate)),
                    axes={"var:headline": headline, "var:background": background},
                )
            )
    analysis = analyse(counts, draws=8000)
    cells = {i.cell for i in analysis.interactions}
    assert ("B", "marble") in cells or ("marble", "B") in cells
