"""Model soups: greedy soups (Wortsman et al. 2022) and SoCE, Soup of Category Experts (arXiv 2511.13254).

Both choose which checkpoints to average, and with what weights, by scores: a held-out metric
for the greedy soup, per-category benchmark scores for SoCE.
"""

from __future__ import annotations

import csv
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from composer_swa.merging.recipes import scaled_weights
from composer_swa.merging.weighted_sum import weighted_sum

__all__ = ["GreedySoup", "Soce", "greedy_soup", "read_category_scores", "soce", "uniform_soup", "weighted_soup"]

StateDict = Mapping[str, torch.Tensor]


def weighted_soup(ingredients: Sequence[StateDict], weights: Sequence[float]) -> dict[str, torch.Tensor]:
    """``Σ w_i θ_i`` over state dicts, in fp32 then cast back (as :func:`~composer_swa.merging.weighted_sum.weighted_sum`,
    so the soup scored is the soup ``swa-average`` writes); integer tensors from the first.

    Example:
        >>> weighted_soup([{"w": torch.tensor([1.0])}, {"w": torch.tensor([3.0])}], [0.25, 0.75])["w"].tolist()
        [2.5]
    """
    terms = scaled_weights(weights, list(range(len(ingredients))), len(ingredients))
    soup = {}
    for name, first in ingredients[0].items():
        if first.is_floating_point():
            total = torch.empty(first.shape, dtype=torch.float32)
            scratch = torch.empty_like(total) if len(terms) > 1 else total
            weighted_sum(((ingredients[k][name], weight) for k, weight in terms), total, scratch)
            soup[name] = total.to(first.dtype)
        else:
            soup[name] = first.clone()
    return soup


def uniform_soup(ingredients: Sequence[StateDict]) -> dict[str, torch.Tensor]:
    """The uniform average of state dicts (see :func:`weighted_soup`)."""
    return weighted_soup(ingredients, [1.0 / len(ingredients)] * len(ingredients))


@dataclass
class GreedySoup:
    """The greedy soup's choice: ingredients (input indices) in the order added, and every step taken."""

    chosen: list[int]
    score: float
    individual_scores: list[float]
    steps: list[str] = field(default_factory=list)


def greedy_soup(candidates: Sequence[StateDict], evaluate: Callable[[dict[str, torch.Tensor]], float]) -> GreedySoup:
    """Wortsman et al.'s greedy soup: by held-out score, best first; keep each candidate only if the soup improves.

    Args:
        candidates: State dicts of one architecture (fine-tunes of one model).
        evaluate: The held-out score of a state dict (higher is better).

    Example:
        >>> a, b, c = ({"w": torch.tensor([v])} for v in (1.0, 3.0, 10.0))
        >>> result = greedy_soup([a, b, c], lambda s: -abs(float(s["w"]) - 2.0))
        >>> result.chosen, result.score
        ([0, 1], -0.0)
    """
    if not candidates:
        raise ValueError("greedy_soup needs at least one candidate")
    scores = [float(evaluate(dict(candidate))) for candidate in candidates]
    order = sorted(range(len(candidates)), key=lambda k: -scores[k])
    chosen = [order[0]]
    best = scores[order[0]]
    steps = [f"start with input {order[0]} (held-out {best:.6g}, the best alone)"]
    for k in order[1:]:
        trial = uniform_soup([candidates[i] for i in [*chosen, k]])
        score = float(evaluate(trial))
        if score > best:
            chosen.append(k)
            best = score
            steps.append(f"add input {k}: soup of {len(chosen)} scores {score:.6g}")
        else:
            steps.append(f"skip input {k}: soup with it scores {score:.6g}, not above {best:.6g}")
    return GreedySoup(chosen, best, scores, steps)


@dataclass
class Soce:
    """What SoCE chose, step by step."""

    categories: list[str]
    selected_categories: list[str]
    correlations: list[list[float]]
    experts: dict[str, int]
    weights: list[float]
    aggregate: float
    steps: list[str] = field(default_factory=list)


def read_category_scores(path: str | Path) -> tuple[list[str], list[str], list[list[float]]]:
    """A CSV of ``candidate,<category>,<category>...`` rows: candidate names, categories, scores."""
    with open(path, newline="", encoding="utf-8") as file:
        rows = [row for row in csv.reader(file) if row and any(cell.strip() for cell in row)]
    if len(rows) < 2 or len(rows[0]) < 2:
        raise ValueError(f"{str(path)!r} needs a header 'candidate,<category>,...' and one row per candidate")
    categories = [cell.strip() for cell in rows[0][1:]]
    names, scores = [], []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(rows[0]):
            raise ValueError(f"{str(path)!r} line {line}: {len(row)} cells, the header has {len(rows[0])}")
        try:
            scores.append([float(cell) for cell in row[1:]])
        except ValueError as error:
            raise ValueError(f"{str(path)!r} line {line}: {error}") from None
        names.append(row[0].strip())
    return names, categories, scores


def _pearson(x: Sequence[float], y: Sequence[float]) -> float:
    mx, my = sum(x) / len(x), sum(y) / len(y)
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    sx, sy = math.sqrt(sum((a - mx) ** 2 for a in x)), math.sqrt(sum((b - my) ** 2 for b in y))
    return sxy / (sx * sy) if sx > 0 and sy > 0 else 0.0


def _simplex(size: int, step: float) -> list[tuple[float, ...]]:
    units = round(1 / step)
    if not math.isclose(units * step, 1.0):
        raise ValueError(f"step must divide 1 evenly (0.1, 0.05, 0.25...), got {step!r}")
    return [tuple(c / units for c in combo) for combo in itertools.product(range(units + 1), repeat=size) if sum(combo) == units]


def soce(
    categories: Sequence[str],
    scores: Sequence[Sequence[float]],
    evaluate: Callable[[list[float]], float | Mapping[str, float]] | None = None,
    threshold: float = 0.5,
    step: float = 0.1,
) -> Soce:
    """Soup of Category Experts: weakly correlated categories, their best candidates, then a weight search.

    1. Pearson correlation between categories across candidates; a category is kept when its mean
       correlation with the others is below ``threshold`` (all are kept when none is).
    2. The best candidate of each kept category is its expert.
    3. Every weighting of the experts on a simplex grid of ``step`` is scored, and the best
       aggregate wins. ``evaluate(weights over all candidates)`` measures a soup (one score, or one
       per category, averaged); without it, a soup's category score is estimated as the weighted
       mean of its experts' scores.

    Example:
        >>> result = soce(["a", "b"], [[0.9, 0.1], [0.1, 0.9]], lambda w: 1 - abs(w[0] - 0.3))
        >>> result.experts, result.weights
        ({'a': 0, 'b': 1}, [0.3, 0.7])
    """
    count, width = len(scores), len(categories)
    if count < 1 or any(len(row) != width for row in scores):
        raise ValueError(f"scores need one row per candidate with {width} values (one per category)")
    columns = [[row[c] for row in scores] for c in range(width)]
    correlations = [[_pearson(columns[i], columns[j]) for j in range(width)] for i in range(width)]
    mean_correlation = [
        sum(correlations[i][j] for j in range(width) if j != i) / (width - 1) if width > 1 else 0.0 for i in range(width)
    ]
    selected = [c for c in range(width) if mean_correlation[c] < threshold] or list(range(width))
    steps = [
        "categories by mean correlation with the others: "
        + ", ".join(f"{categories[c]} {mean_correlation[c]:+.3f}" for c in range(width)),
        f"kept (below {threshold}): {', '.join(categories[c] for c in selected)}",
    ]
    experts = {categories[c]: max(range(count), key=columns[c].__getitem__) for c in selected}
    steps.append("experts: " + ", ".join(f"{name} -> candidate {k}" for name, k in experts.items()))
    pool = sorted(set(experts.values()))

    def aggregate(weights: list[float]) -> float:
        if evaluate is None:
            return sum(sum(w * scores[k][c] for k, w in enumerate(weights)) for c in range(width)) / width
        result = evaluate(weights)
        return float(sum(result.values()) / len(result)) if isinstance(result, Mapping) else float(result)

    best_weights: list[float] = []
    best = -math.inf
    for point in _simplex(len(pool), step):
        weights = [0.0] * count
        for k, w in zip(pool, point):
            weights[k] = w
        score = aggregate(weights)
        if score > best + 1e-12:
            best, best_weights = score, weights
    steps.append(
        f"searched {len(_simplex(len(pool), step))} weightings of {len(pool)} experts (step {step}); "
        f"best aggregate {best:.6g} at " + ", ".join(f"candidate {k}: {best_weights[k]:g}" for k in pool)
    )
    if evaluate is None:
        steps.append("soup scores were estimated as weighted means of the experts' scores, not measured")
    return Soce(list(categories), [categories[c] for c in selected], correlations, experts, best_weights, best, steps)
