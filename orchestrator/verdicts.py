"""A forecast against every baseline on the test part: the comparisons and the verdict in words.

Each comparison is a test with a p-value, an interval and an outcome (``better``,
``no_difference``, ``worse`` at 5%). The ones that decide the verdict (``decides``) are one
per baseline:

* regression: Diebold-Mariano on squared errors against the naive forecast (persistence or
  the training mean, per ``trainables.naive``) and against ridge, with a moving-block
  bootstrap interval of the skill ``1 - MSE / MSE_baseline``;
* classification: accuracy against the majority class and against logistic regression
  (McNemar or a paired block bootstrap).

Secondary, reported but not deciding: Clark-West against the naive forecast (nested in the
model), Pesaran-Timmermann on the direction, macro-F1 against block-permuted predictions.

The model "beats the baselines" only if it is ``better`` than every one (an
intersection-union test: each at 5%, no picking of the strongest on the test part).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from orchestrator.significance import (
    clark_west,
    diebold_mariano,
    direction_edge,
    macro_f1_permutation,
    outcome,
    paired_accuracy,
    pesaran_timmermann,
    skill_interval,
)
from trainables.naive import PERSISTENCE, naive_kind

__all__ = [
    "Comparison",
    "classification_comparisons",
    "fmt_p",
    "regression_comparisons",
    "verdict",
]


@dataclass(frozen=True)
class Comparison:
    """One test of the model against one baseline on the test part."""

    baseline: str
    test: str
    statistic: float
    p_value: float
    ci_low: float
    ci_high: float
    outcome: str  # better | no_difference | worse
    measure: str  # what estimate and the interval are, e.g. "skill vs persistence"
    estimate: float
    effect: str  # the estimate in words, e.g. "skill +0.0001"
    decides: bool  # one per baseline: part of the verdict
    note: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def fmt_p(p: float) -> str:
    return "p < 0.0001" if p < 1e-4 else f"p = {p:.2g}"


# ---------------------------------------------------------------------- regression


def regression_comparisons(
    truth: np.ndarray,
    pred: np.ndarray,
    baselines: dict[str, np.ndarray],
    *,
    names: list[str],
    now: np.ndarray,
    naive: str,
    horizon: int,
    seed: int = 0,
) -> list[Comparison]:
    """``[n, T]`` truth and forecasts in original units; ``baselines`` name -> ``[n, T]``
    forecasts, ``naive`` the name of the naive one among them; ``now`` the targets at the
    anchors. With several targets each target's squared errors are divided by the
    baseline's test MSE of that target, so no target swamps the others."""
    se = (pred - truth) ** 2
    out = []
    for name, base in baselines.items():
        se_base = (base - truth) ** 2
        scale = se_base.mean(axis=0)
        scale = np.where(scale > 0, scale, 1.0)
        statistic, p, lag = diebold_mariano(
            (se / scale).mean(axis=1), (se_base / scale).mean(axis=1), horizon=horizon
        )
        skill = float(1.0 - np.mean(se.mean(axis=0) / scale))
        low, high = skill_interval(se, se_base, horizon=horizon, seed=seed)
        out.append(
            Comparison(
                baseline=name,
                test="Diebold-Mariano (HLN, HAC)",
                statistic=statistic,
                p_value=p,
                ci_low=low,
                ci_high=high,
                outcome=outcome(p, statistic),
                measure=f"skill vs {name}",
                estimate=skill,
                effect=f"skill {skill:+.4f}",
                decides=True,
                note=f"HAC lag {lag}; interval: moving-block bootstrap",
            )
        )
    out.append(_clark_west(truth, pred, baselines[naive], naive, horizon))
    direction = _direction(truth, pred, now, names, horizon, seed)
    if direction is not None:
        out.append(direction)
    return out


def _clark_west(truth, pred, base, name: str, horizon: int) -> Comparison:
    scale = ((base - truth) ** 2).mean(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    statistic, p, mean, se = clark_west(truth, pred, base, horizon=horizon, weights=1 / scale)
    return Comparison(
        baseline=name,
        test="Clark-West (nested, one-sided, HAC)",
        statistic=statistic,
        p_value=p,
        ci_low=mean - 1.96 * se,
        ci_high=mean + 1.96 * se,
        outcome="better" if p < 0.05 else "no_difference",  # one-sided: no 'worse'
        measure=f"adjusted MSE gain / MSE of {name}",
        estimate=mean,
        effect=f"adjusted gain {mean:+.4f}",
        decides=False,
        note=f"{name} is nested in the model (it reads the target's last value); "
        "secondary to Diebold-Mariano",
    )


def _direction(truth, pred, now, names, horizon: int, seed: int) -> Comparison | None:
    """Pesaran-Timmermann on the traded target's direction if there is one (close first,
    as the trading view), else the first target with a direction: the change from now for a
    level, the sign for a return-like target centred at 0."""
    first = ("close", "open", "high", "low", "log_return")
    order = sorted(range(len(names)), key=lambda k: (first + (names[k],)).index(names[k]))
    for k in order:
        name = names[k]
        if naive_kind(name) == PERSISTENCE:
            actual, called = truth[:, k] - now[:, k], pred[:, k] - now[:, k]
        elif name in ("log_return", "sma_gap"):
            actual, called = truth[:, k], pred[:, k]
        else:
            continue
        statistic, p, test = pesaran_timmermann(actual, called, horizon=horizon)
        edge, low, high = direction_edge(actual, called, horizon=horizon, seed=seed)
        return Comparison(
            baseline=f"chance (direction of {name})",
            test=test,
            statistic=statistic,
            p_value=p,
            ci_low=low,
            ci_high=high,
            outcome=outcome(p, statistic),
            measure="hit rate minus chance",
            estimate=edge,
            effect=f"direction hit rate {edge:+.3f} over chance",
            decides=False,
            note="" if np.isfinite(statistic) else "the forecast or the truth never changes sign",
        )
    return None


# ---------------------------------------------------------------------- classification


def classification_comparisons(
    truth: np.ndarray,
    proba: np.ndarray,
    baselines: dict[str, np.ndarray],
    *,
    horizon: int,
    seed: int = 0,
) -> list[Comparison]:
    """``truth`` ``[n]`` labels, ``proba`` and each baseline's outputs ``[n, 3]``."""
    pred = np.asarray(proba).argmax(axis=1)
    correct = (pred == truth).astype(np.float64)
    out = []
    for name, base in baselines.items():
        base_correct = (np.asarray(base).argmax(axis=1) == truth).astype(np.float64)
        statistic, p, low, high, test = paired_accuracy(
            correct, base_correct, horizon=horizon, seed=seed
        )
        diff = float(correct.mean() - base_correct.mean())
        out.append(
            Comparison(
                baseline=name,
                test=test,
                statistic=statistic,
                p_value=p,
                ci_low=low,
                ci_high=high,
                outcome=outcome(p, diff),
                measure=f"accuracy minus {name}'s",
                estimate=diff,
                effect=f"accuracy {correct.mean():.3f} vs {base_correct.mean():.3f}",
                decides=True,
                note="interval: paired moving-block bootstrap",
            )
        )
    observed, null, p, low, high = macro_f1_permutation(truth, pred, horizon=horizon, seed=seed)
    out.append(
        Comparison(
            baseline="its own predictions, block-permuted",
            test="block permutation",
            statistic=observed - null,
            p_value=p,
            ci_low=low,
            ci_high=high,
            outcome=outcome(p, observed - null),
            measure="macro F1 minus chance",
            estimate=observed - null,
            effect=f"macro F1 {observed:.3f} vs {null:.3f} by chance",
            decides=False,
            note="the permutations keep how often the model predicts each class",
        )
    )
    return out


# ---------------------------------------------------------------------- the sentence


def verdict(label: str, comparisons: list[Comparison]) -> str:
    """One plain sentence from the deciding comparisons, quoting each p-value."""
    deciding = [c for c in comparisons if c.decides]
    if deciding and all(c.outcome == "better" for c in deciding):
        parts = [f"{c.baseline} ({c.effect}, {fmt_p(c.p_value)})" for c in deciding]
        return f"{label} beats the baselines on the test part: better than " + "; ".join(parts)
    order = {"worse": 0, "no_difference": 1, "better": 2}
    parts = []
    for c in sorted(deciding, key=lambda c: order[c.outcome]):
        detail = f"({c.effect}, {fmt_p(c.p_value)})"
        if c.outcome == "worse":
            parts.append(f"significantly worse than {c.baseline} {detail}")
        elif c.outcome == "no_difference":
            parts.append(f"no significant difference from {c.baseline} {detail}")
        else:
            parts.append(f"better than {c.baseline} {detail}")
    return f"{label} does NOT beat the baselines on the test part: " + "; ".join(parts)
