"""A forecast against every baseline on the test part: the comparisons and the verdict in words.

Each comparison is a one-sided test of "the model is better" at 5% (``significance.ALPHA``),
with its p-value, the 90% interval from the same variance (so the two never disagree), the
smallest effect the test could have detected (80% power, at this n and this dependence) and
an outcome: ``better``, ``no_difference``, ``worse`` (the mirror one-sided test, never part
of "beats") or ``no_test`` (with the reason). The ones that decide the verdict
(``decides``) are one per baseline:

* regression: Diebold-Mariano (EWC) on squared errors against the naive forecast
  (persistence or the training mean, per ``trainables.prep.naive``) and against ridge; the effect
  is the skill ``1 - MSE / MSE_baseline``;
* classification: the accuracy difference (EWC on the 0/1 loss differential) against the
  majority class and against logistic regression.

Secondary, reported but not deciding: Clark-West against the naive forecast (nested in the
model), Pesaran-Timmermann on the direction, macro-F1 against rotated predictions.

The model "beats the baselines" only if it is ``better`` than every one: an intersection-union
test, whose p-value is the largest one-sided p over the deciding comparisons
(``Verdict.iu_p``), each at 5%, no picking of the strongest on the test part.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from orchestrator.stats.significance import (
    ALPHA,
    LEVEL,
    TestResult,
    accuracy_difference,
    clark_west,
    diebold_mariano,
    macro_f1_rotation,
    pesaran_timmermann,
)
from trainables.prep.naive import PERSISTENCE, naive_kind

__all__ = [
    "INTERVAL",
    "Comparison",
    "Verdict",
    "classification_comparisons",
    "fmt_p",
    "regression_comparisons",
    "verdict",
]


INTERVAL = f"{LEVEL:.0%} interval"  # every comparison's interval, named as tables show it


@dataclass(frozen=True)
class Comparison:
    """One test of the model against one baseline on the test part."""

    baseline: str
    test: str
    statistic: float
    p_value: float  # one-sided: H1 the model is better (NaN when no test was possible)
    ci_low: float  # the 90% interval of ``estimate``, from the test's own variance
    ci_high: float
    outcome: str  # better | no_difference | worse | no_test
    measure: str  # what estimate and the interval are, e.g. "skill vs persistence"
    estimate: float
    effect: str  # the estimate in words, e.g. "skill +0.0001"
    decides: bool  # one per baseline: part of the verdict
    note: str = ""
    p_worse: float = math.nan  # one-sided: H1 the model is worse
    detectable: float = math.nan  # smallest effect found with 80% power, units of estimate
    detectable_of: str = ""  # what ``detectable`` measures, e.g. "skill"
    reason: str = ""  # why no test was possible ('' when one was)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Verdict:
    """The verdict of one forecast: the sentence and the number behind it.

    ``iu_p`` is the intersection-union p-value of "better than every baseline": the largest
    one-sided p over the deciding comparisons (1.0 when one of them could not be tested).
    "beats" holds exactly when ``iu_p < level``. ``descriptive``: not the chosen model (its
    verdict describes, and must not be used to pick a model on the test part).
    """

    label: str
    text: str
    beats: bool
    iu_p: float
    level: float = ALPHA
    descriptive: bool = False

    def __str__(self) -> str:
        return self.text

    def to_dict(self) -> dict:
        return asdict(self)


def fmt_p(p: float) -> str:
    if p is None or not math.isfinite(p):
        return "p n/a"
    return "p < 0.0001" if p < 1e-4 else f"p = {p:.2g}"


def _comparison(
    r: TestResult,
    *,
    baseline: str,
    measure: str,
    effect: str,
    decides: bool,
    detectable_of: str,
    note: str = "",
) -> Comparison:
    return Comparison(
        baseline=baseline,
        test=r.test,
        statistic=r.statistic,
        p_value=r.p_better,
        ci_low=r.ci_low,
        ci_high=r.ci_high,
        outcome=r.outcome,
        measure=measure,
        estimate=r.estimate,
        effect=effect,
        decides=decides,
        note=note,
        p_worse=r.p_worse,
        detectable=r.detectable,
        detectable_of=detectable_of,
        reason=r.reason,
    )


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
) -> list[Comparison]:
    """``[n, T]`` truth and forecasts in original units; ``baselines`` name -> ``[n, T]``
    forecasts, ``naive`` the name of the naive one among them; ``now`` the targets at the
    anchors. Each target's squared errors are divided by the baseline's test MSE of that
    target, so no target swamps the others and the differential's mean is the skill
    ``1 - mean_T(MSE_model / MSE_base)`` itself: the test, its interval and the detectable
    skill are in skill units (with the baseline's test MSE taken as known)."""
    se = (pred - truth) ** 2
    out = []
    for name, base in baselines.items():
        se_base = (base - truth) ** 2
        scale = se_base.mean(axis=0)
        scale = np.where(scale > 0, scale, 1.0)
        r = diebold_mariano(
            (se / scale).mean(axis=1), (se_base / scale).mean(axis=1), horizon=horizon
        )
        skill = float(1.0 - np.mean(se.mean(axis=0) / scale))
        out.append(
            _comparison(
                r,
                baseline=name,
                measure=f"skill vs {name}",
                effect=f"skill {skill:+.4f}",
                decides=True,
                detectable_of="skill",
                note=f"EWC variance with {r.dof} degrees of freedom" if r.possible else "",
            )
        )
    out.append(_clark_west(truth, pred, baselines[naive], naive, horizon))
    direction = _direction(truth, pred, now, names, horizon)
    if direction is not None:
        out.append(direction)
    return out


def _clark_west(truth, pred, base, name: str, horizon: int) -> Comparison:
    scale = ((base - truth) ** 2).mean(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    r = clark_west(truth, pred, base, horizon=horizon, weights=1 / scale)
    return _comparison(
        r,
        baseline=name,
        measure=f"adjusted MSE gain / MSE of {name}",
        effect=f"adjusted gain {r.estimate:+.4f}",
        decides=False,
        detectable_of="adjusted gain",
        note=f"{name} is nested in the model (it reads the target's last value); "
        "secondary to Diebold-Mariano",
    )


def _direction(truth, pred, now, names, horizon: int) -> Comparison | None:
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
        r = pesaran_timmermann(actual, called, horizon=horizon)
        return _comparison(
            r,
            baseline=f"chance (direction of {name})",
            measure="hit rate minus chance",
            effect=f"direction hit rate {r.estimate:+.3f} over chance",
            decides=False,
            detectable_of="hit rate over chance",
        )
    return None


# ---------------------------------------------------------------------- classification


def classification_comparisons(
    truth: np.ndarray,
    proba: np.ndarray,
    baselines: dict[str, np.ndarray],
    *,
    horizon: int,
) -> list[Comparison]:
    """``truth`` ``[n]`` labels, ``proba`` and each baseline's outputs ``[n, 3]``."""
    pred = np.asarray(proba).argmax(axis=1)
    correct = (pred == truth).astype(np.float64)
    out = []
    for name, base in baselines.items():
        base_correct = (np.asarray(base).argmax(axis=1) == truth).astype(np.float64)
        r = accuracy_difference(correct, base_correct, horizon=horizon)
        out.append(
            _comparison(
                r,
                baseline=name,
                measure=f"accuracy minus {name}'s",
                effect=f"accuracy {correct.mean():.3f} vs {base_correct.mean():.3f}",
                decides=True,
                detectable_of="accuracy gain",
                note=f"EWC variance with {r.dof} degrees of freedom" if r.possible else "",
            )
        )
    r = macro_f1_rotation(truth, pred, horizon=horizon)
    out.append(
        _comparison(
            r,
            baseline="its own predictions, rotated",
            measure="macro F1 minus chance",
            effect=f"macro F1 {r.estimate:+.3f} over chance",
            decides=False,
            detectable_of="macro F1 over chance",
            note="the rotations keep how often, and in which runs, the model predicts each class",
        )
    )
    return out


# ---------------------------------------------------------------------- the sentence


def _detail(c: Comparison) -> str:
    """``(test: effect, p; could detect ...)`` of one deciding comparison."""
    if c.outcome == "no_test":
        return f"({c.test}: {c.reason})"
    p = fmt_p(c.p_value)
    if c.outcome == "worse":
        p += f" (worse: {fmt_p(c.p_worse)})"
    could = ""
    if math.isfinite(c.detectable):
        could = f"; the test could detect {c.detectable_of or 'an effect'} >= {c.detectable:.2g}"
    return f"({c.test}: {c.effect}, {p}{could})"


_PHRASE = {
    "worse": "significantly worse than",
    "no_test": "no test possible against",
    "no_difference": "no significant difference from",
    "better": "better than",
}


def verdict(label: str, comparisons: list[Comparison], *, descriptive: bool = False) -> Verdict:
    """The verdict from the deciding comparisons: one sentence naming each test, quoting each
    one-sided p-value and the smallest effect each could have detected, and the
    intersection-union p-value (the largest of them)."""
    deciding = [c for c in comparisons if c.decides]
    ps = [c.p_value if c.outcome != "no_test" else 1.0 for c in deciding]
    iu_p = float(max(ps)) if ps else 1.0
    beats = bool(deciding) and all(c.outcome == "better" for c in deciding)
    head = f"{label} {'beats' if beats else 'does NOT beat'} the baselines on the test part"
    level = f"intersection-union {fmt_p(iu_p)}, each test one-sided at {ALPHA:.0%}"
    order = {"worse": 0, "no_test": 1, "no_difference": 2, "better": 3}
    parts = [
        f"{_PHRASE[c.outcome]} {c.baseline} {_detail(c)}"
        for c in sorted(deciding, key=lambda c: order[c.outcome])
    ]
    text = f"{head} ({level}): " + "; ".join(parts)
    if descriptive:
        text = f"Descriptive only, not the chosen model: {text}"
    return Verdict(label=label, text=text, beats=beats, iu_p=iu_p, descriptive=descriptive)
