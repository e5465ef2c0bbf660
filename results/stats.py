"""A/B statistics for a batch's variants: pure functions over counts, no Django.

Each variant is a binomial experiment (impressions → clicks, clicks → conversions). We estimate its
rate with a beta posterior. With many variants the best-looking one is usually lucky, so the prior is
not flat: it is fitted to the batch itself (empirical Bayes, method of moments on the observed rates),
which shrinks every variant towards the batch's mean in proportion to how little data it has and how
alike the variants look. When the variants look no more different than their sampling noise allows,
the prior becomes strong and nobody is crowned; when one truly differs, the data outweigh it.

From posterior draws (Monte Carlo, a fixed RNG seed so a page shows the same figures twice) we read,
for every variant, the probability that it is the best and its expected loss (how much rate we give up
by choosing it, if another is better). A winner is declared only when every variant has the minimum
data and the leader's probability of being best reaches the threshold.

The design is factorial (variables × seeds × models × sizes), so the same draws also answer per-axis
questions: for each axis value, its mean rate over the other axes' cells, and the probability that it
is the best value of its axis "whatever the rest". Two-axis interactions are read from the residuals of
an additive fit to the cell means.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

DRAWS = 20_000
# The prior's strength (alpha + beta) is bounded: at most "as strong as a million impressions" when
# the variants look identical, at least 2 (a flat-ish prior) when they differ wildly.
MAX_PRIOR_STRENGTH = 1e6
MIN_PRIOR_STRENGTH = 2.0


@dataclass(frozen=True)
class Counts:
    key: str  # the variant's id (an asset code)
    trials: int  # impressions (CTR) or clicks (conversion rate)
    successes: int  # clicks or conversions
    # axis -> value, e.g. {"var:headline": "Warm Up", "seed": "42", "target": "bfl:flux-2-pro"}
    axes: Mapping[str, str] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.successes / self.trials if self.trials else 0.0


@dataclass(frozen=True)
class VariantStats:
    key: str
    trials: int
    successes: int
    rate: float
    low: float  # 95 % credible interval of the (shrunk) rate
    high: float
    mean: float  # posterior mean (shrunk towards the batch's mean)
    p_best: float
    expected_loss: float
    enough_data: bool


@dataclass(frozen=True)
class AxisValueStats:
    value: str
    mean: float
    low: float
    high: float
    p_best: float
    trials: int
    successes: int


@dataclass(frozen=True)
class AxisStats:
    axis: str
    values: list[AxisValueStats]
    decided: bool  # the best value's probability reached the threshold
    best: str


@dataclass(frozen=True)
class Interaction:
    axes: tuple[str, str]
    cell: tuple[str, str]
    residual: float  # rate above (or below) what the two main effects predict
    probability: float  # P(residual > 0)


@dataclass(frozen=True)
class Analysis:
    variants: list[VariantStats]
    prior_mean: float
    prior_strength: float
    too_early: bool  # some variant lacks the minimum data
    winner: str | None  # a variant key, when one is declared
    axes: list[AxisStats]
    interactions: list[Interaction]


def fit_prior(counts: Sequence[Counts]) -> tuple[float, float]:
    """(alpha, beta) of a beta prior fitted to the variants' rates (method of moments).

    The between-variant variance is the observed variance of the rates minus the average binomial
    sampling variance; when that is not positive the variants look alike and the prior is strong.
    """
    usable = [c for c in counts if c.trials > 0]
    total_trials = sum(c.trials for c in usable)
    if not usable or total_trials == 0:
        return 1.0, 1.0
    mean = sum(c.successes for c in usable) / total_trials
    mean = min(max(mean, 1e-6), 1 - 1e-6)
    if len(usable) < 2:
        return mean * MIN_PRIOR_STRENGTH, (1 - mean) * MIN_PRIOR_STRENGTH
    rates = np.array([c.rate for c in usable])
    sampling = float(np.mean([mean * (1 - mean) / c.trials for c in usable]))
    # A conservative estimate: sampling noise counted (K+1)/(K-1) times over, so two variants
    # must differ by well over their noise before the prior lets them apart (with K=2 the plain
    # estimate crowns an A/A "winner" about 5 % of the time; this, under 2 %).
    k = len(usable)
    between = float(np.var(rates, ddof=1)) - sampling * (k + 1) / (k - 1)
    if between <= 0:
        strength = MAX_PRIOR_STRENGTH
    else:
        strength = mean * (1 - mean) / between - 1
        strength = min(max(strength, MIN_PRIOR_STRENGTH), MAX_PRIOR_STRENGTH)
    return mean * strength, (1 - mean) * strength


def analyse(
    counts: Sequence[Counts],
    *,
    min_trials: int = 1000,
    min_successes: int = 0,
    threshold: float = 0.95,
    draws: int = DRAWS,
    seed: int = 0,
) -> Analysis:
    """Posterior summaries, probability of being best, expected loss, axes and interactions."""
    counts = list(counts)
    if not counts:
        return Analysis([], 0.0, 0.0, True, None, [], [])
    alpha0, beta0 = fit_prior(counts)
    rng = np.random.default_rng(seed)
    trials = np.array([c.trials for c in counts], dtype=float)
    successes = np.array([c.successes for c in counts], dtype=float)
    a = alpha0 + successes
    b = beta0 + np.maximum(trials - successes, 0)
    samples = rng.beta(a[:, None], b[:, None], size=(len(counts), draws))
    best = np.argmax(samples, axis=0)
    p_best = np.bincount(best, minlength=len(counts)) / draws
    loss = np.mean(samples.max(axis=0)[None, :] - samples, axis=1)
    lows, highs = np.quantile(samples, [0.025, 0.975], axis=1)
    enough = [c.trials >= min_trials and c.successes >= min_successes for c in counts]
    variants = [
        VariantStats(
            key=c.key,
            trials=c.trials,
            successes=c.successes,
            rate=c.rate,
            low=float(lows[i]),
            high=float(highs[i]),
            mean=float(a[i] / (a[i] + b[i])),
            p_best=float(p_best[i]),
            expected_loss=float(loss[i]),
            enough_data=enough[i],
        )
        for i, c in enumerate(counts)
    ]
    too_early = not all(enough)
    leader = int(np.argmax(p_best))
    winner = (
        counts[leader].key
        if len(counts) > 1 and not too_early and p_best[leader] >= threshold
        else None
    )
    axes = _axes(counts, samples, threshold) if not too_early else []
    return Analysis(
        variants=variants,
        prior_mean=alpha0 / (alpha0 + beta0),
        prior_strength=alpha0 + beta0,
        too_early=too_early,
        winner=winner,
        axes=axes,
        interactions=_interactions(counts, samples) if not too_early else [],
    )


def _varying_axes(counts: Sequence[Counts]) -> list[str]:
    names: dict[str, set[str]] = {}
    for c in counts:
        for axis, value in c.axes.items():
            names.setdefault(axis, set()).add(value)
    return [axis for axis, values in names.items() if len(values) > 1]


def _cell_means(
    counts: Sequence[Counts], samples: np.ndarray, keys: Sequence[str]
) -> dict[tuple[str, ...], np.ndarray]:
    """Per combination of the given axes' values, the draws of the mean rate over the other axes.

    Averaging cells (not pooling their counts) keeps an unevenly served variant from weighing more
    than the others: each combination of the remaining axes counts once.
    """
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, c in enumerate(counts):
        groups.setdefault(tuple(c.axes.get(k, "") for k in keys), []).append(i)
    return {value: samples[idx].mean(axis=0) for value, idx in groups.items()}


def _axes(
    counts: Sequence[Counts], samples: np.ndarray, threshold: float
) -> list[AxisStats]:
    result = []
    for axis in _varying_axes(counts):
        cells = _cell_means(counts, samples, [axis])
        values = sorted(cells)
        stacked = np.stack([cells[v] for v in values])
        p_best = (
            np.bincount(np.argmax(stacked, axis=0), minlength=len(values))
            / (stacked.shape[1])
        )
        lows, highs = np.quantile(stacked, [0.025, 0.975], axis=1)
        stats = []
        for i, value in enumerate(values):
            members = [c for c in counts if c.axes.get(axis, "") == value[0]]
            stats.append(
                AxisValueStats(
                    value=value[0],
                    mean=float(stacked[i].mean()),
                    low=float(lows[i]),
                    high=float(highs[i]),
                    p_best=float(p_best[i]),
                    trials=sum(c.trials for c in members),
                    successes=sum(c.successes for c in members),
                )
            )
        leader = max(stats, key=lambda s: s.p_best)
        result.append(
            AxisStats(
                axis=axis,
                values=stats,
                decided=leader.p_best >= threshold,
                best=leader.value,
            )
        )
    return result


def _interactions(
    counts: Sequence[Counts],
    samples: np.ndarray,
    *,
    min_probability: float = 0.95,
    min_relative: float = 0.05,
) -> list[Interaction]:
    """Cells of two axes whose rate departs from the additive model, credibly and noticeably.

    residual(a, b) = m(a, b) - m(a, ·) - m(·, b) + m(·, ·), per draw; a cell is worth a look when
    P(residual > 0) is at least `min_probability` (or at most 1 - it) and the residual's mean is at
    least `min_relative` of the overall mean rate.
    """
    found = []
    overall = samples.mean(axis=0)
    scale = float(overall.mean()) or 1.0
    for first, second in combinations(_varying_axes(counts), 2):
        cells = _cell_means(counts, samples, [first, second])
        rows = _cell_means(counts, samples, [first])
        cols = _cell_means(counts, samples, [second])
        for (a, b), draws in cells.items():
            residual = draws - rows[(a,)] - cols[(b,)] + overall
            probability = float(np.mean(residual > 0))
            mean = float(residual.mean())
            credible = probability >= min_probability or probability <= (
                1 - min_probability
            )
            if credible and abs(mean) >= min_relative * scale:
                found.append(Interaction((first, second), (a, b), mean, probability))
    found.sort(key=lambda i: -abs(i.residual))
    return found
