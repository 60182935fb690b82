"""Greedy soups where the greedy choice is known, and SoCE on a CSV worked out by hand."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from composer_swa.merging.soups import greedy_soup, read_category_scores, soce


def test_greedy_soup_adds_a_candidate_only_when_the_soup_improves() -> None:
    """Held-out score −|w − 2|. Alone: a=1 → −1, b=2.6 → −0.6, c=10 → −8, d=1.6 → −0.4.

    Order d, b, a, c. {d,b} mean 2.1 → −0.1: added. {d,b,a} mean 1.733 → −0.267: skipped.
    {d,b,c} mean 4.733: skipped. The soup is {d, b}.
    """
    candidates = [{"w": torch.tensor([value]), "step": torch.tensor(k)} for k, value in enumerate([1.0, 2.6, 10.0, 1.6])]

    result = greedy_soup(candidates, lambda state: -abs(float(state["w"]) - 2.0))

    assert result.chosen == [3, 1]
    assert result.score == pytest.approx(-0.1)
    assert result.individual_scores == pytest.approx([-1.0, -0.6, -8.0, -0.4])
    assert [line.split(":")[0] for line in result.steps] == [
        "start with input 3 (held-out -0.4, the best alone)",
        "add input 1",
        "skip input 0",
        "skip input 2",
    ]


SCORES = """\
candidate,math,code,chat
m0,0.80,0.70,0.20
m1,0.60,0.50,0.90
m2,0.70,0.90,0.30
"""


def test_soce_on_a_csv_worked_out_by_hand(tmp_path: Path) -> None:
    """By hand. Deviations from the category means over m0, m1, m2:
    math (.1, −.1, 0), code (0, −.2, .2), chat (−.2667, .4333, −.1667).
    r(math, code) = .02 / (√.02·√.08) = 0.5; r(math, chat) = −.07 / (√.02·√.28667) = −0.9245;
    r(code, chat) = −.12 / (√.08·√.28667) = −0.7924. Mean correlation with the others: math −0.212,
    code −0.146, chat −0.858, all below 0.5: all kept. Experts: math → m0, code → m2, chat → m1.
    """
    names, categories, scores = read_category_scores(_write(tmp_path, SCORES))
    assert names == ["m0", "m1", "m2"] and categories == ["math", "code", "chat"]

    # The soup's measured aggregate: best when m1 (the chat expert) has weight 0.4 and m0, m2 share the rest.
    def evaluate(weights: list[float]) -> float:
        return -((weights[1] - 0.4) ** 2) - (weights[0] - weights[2]) ** 2

    result = soce(categories, scores, evaluate, threshold=0.5, step=0.1)

    assert result.selected_categories == ["math", "code", "chat"]
    assert result.experts == {"math": 0, "code": 2, "chat": 1}
    assert result.weights == pytest.approx([0.3, 0.4, 0.3])
    assert result.correlations[0][1] == pytest.approx(0.5)
    assert result.correlations[0][2] == pytest.approx(-0.9245, abs=1e-4)
    assert result.correlations[1][2] == pytest.approx(-0.7924, abs=1e-4)


def test_soce_drops_strongly_correlated_categories_and_estimates_without_an_evaluator() -> None:
    # math and physics move together (r = 1); poetry against them (r = −1).
    categories = ["math", "physics", "poetry"]
    scores = [[0.9, 0.8, 0.1], [0.5, 0.4, 0.5], [0.1, 0.0, 0.9]]

    result = soce(categories, scores, threshold=0.0, step=0.5)

    # Mean correlation: math (1 − 1)/2 = 0, physics 0, poetry −1: only poetry is below 0.
    assert result.selected_categories == ["poetry"] and result.experts == {"poetry": 2}
    assert result.weights == [0.0, 0.0, 1.0]
    assert result.aggregate == pytest.approx((0.1 + 0.0 + 0.9) / 3)
    assert "estimated" in result.steps[-1]


def _write(folder: Path, text: str) -> Path:
    path = folder / "scores.csv"
    path.write_text(text)
    return path
