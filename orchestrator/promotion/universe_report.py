"""``results/<universe>/universe_report.html`` (plot inline) and ``universe_report.md``.

One row per ticker: its verdict against every baseline (each deciding comparison's skill
with its interval and p-value), its intersection-union p-value, the Benjamini-Yekutieli
adjusted one and whether it is a winner at the universe's FDR; and a plot of every ticker's
skill against each baseline with its interval. Each ticker's own report.html has the rest.
"""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from orchestrator.stats.verdicts import fmt_p

__all__ = ["skill_plot", "ticker_table", "write_universe_report"]

_CSS = """body{font-family:system-ui,sans-serif;max-width:1300px;margin:2em auto;color:#222}
table{border-collapse:collapse;font-size:13px;margin:.5em 0}
td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f2f2f2}.good{color:#070;font-weight:bold}img{max-width:100%}"""
_PLOTTED = 80  # tickers in the plot (the most significant first); the table has them all


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _markdown(frame: pd.DataFrame) -> str:
    """A GitHub-style markdown table (pandas' to_markdown needs an extra package)."""
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(str(v).replace("|", "/") for v in row) + " |")
    return "\n".join(lines)


def _interval(c: dict) -> str:
    est, low, high = c.get("estimate"), c.get("ci_low"), c.get("ci_high")
    if est is None or not math.isfinite(est):
        return "n/a"
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return f"{est:+.4f}"
    return f"{est:+.4f} [{low:+.4f}, {high:+.4f}]"


def ticker_table(verdict: dict) -> pd.DataFrame:
    """One row per ticker (winners first, then by adjusted p)."""
    rows = []
    for ticker, row in verdict["tickers"].items():
        out = {"ticker": ticker}
        if row["status"] != "promoted":
            out["verdict"] = f"not promoted: {row.get('reason')}"
        else:
            out["verdict"] = "beats every baseline" if row["beats"] else "does not beat them all"
            for c in row["comparisons"]:
                out[f"vs {c['baseline']}"] = f"{_interval(c)}, {fmt_p(c['p_value'])}"
        out["intersection-union p"] = fmt_p(row["iu_p"]) if row.get("iu_p") is not None else "n/a"
        out[f"adjusted p ({verdict['fdr']['method']})"] = fmt_p(row["adjusted_p"])
        out[f"winner at FDR {verdict['fdr']['level']:.0%}"] = "yes" if row["winner"] else "no"
        out["_order"] = (not row["winner"], row["adjusted_p"])
        rows.append(out)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    return frame.sort_values("_order", kind="stable").drop(columns="_order").fillna("")


def skill_plot(verdict: dict) -> str | None:
    """Each promoted ticker's skill against each baseline with its interval (inline PNG)."""
    promoted = {t: r for t, r in verdict["tickers"].items() if r["status"] == "promoted"}
    if not promoted:
        return None
    order = sorted(promoted, key=lambda t: promoted[t]["adjusted_p"])[:_PLOTTED][::-1]
    baselines = list(
        dict.fromkeys(c["baseline"] for r in promoted.values() for c in r["comparisons"])
    )
    fig = Figure(figsize=(8, 1.2 + 0.32 * len(order)))
    ax = fig.subplots()
    step = 0.6 / max(len(baselines), 1)
    for k, name in enumerate(baselines):
        ys, xs, lo, hi = [], [], [], []
        for y, ticker in enumerate(order):
            c = next((c for c in promoted[ticker]["comparisons"] if c["baseline"] == name), None)
            if c is None or c.get("estimate") is None or not math.isfinite(c["estimate"]):
                continue
            ys.append(y + (k - (len(baselines) - 1) / 2) * step)
            xs.append(c["estimate"])
            lo.append(
                c["estimate"] - (c.get("ci_low") if c.get("ci_low") is not None else c["estimate"])
            )
            hi.append(
                (c.get("ci_high") if c.get("ci_high") is not None else c["estimate"])
                - c["estimate"]
            )
        ax.errorbar(
            xs,
            ys,
            xerr=[np.maximum(lo, 0), np.maximum(hi, 0)],
            fmt="o",
            ms=4,
            capsize=2,
            label=f"vs {name}",
        )
    ax.axvline(0.0, color="k", lw=0.8)
    ax.set_yticks(range(len(order)))
    labels = [f"{t} *" if promoted[t]["winner"] else t for t in order]
    ax.set_yticklabels(labels)
    ax.set_xlabel(
        "skill on the test part (1 - MSE / baseline MSE; accuracy difference for classes), with its interval"
    )
    ax.set_title(f"{verdict['headline']}\n(* = winner after the adjustment)", fontsize=9)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return _png(fig)


def write_universe_report(out_dir: Path, verdict: dict) -> tuple[Path, Path]:
    """The two files, each by temporary name and rename; returns (html, md)."""
    table = ticker_table(verdict)
    image = skill_plot(verdict)
    fdr = verdict["fdr"]
    method = (
        f"Each ticker was promoted on its own test part; its intersection-union p-value is the "
        f"largest one-sided p of its deciding comparisons. The {fdr['family']} tickers swept "
        f"form the family ({fdr['promoted']} promoted; one that could not be promoted counts "
        f"as p = 1); {fdr['method']} at FDR {fdr['level']:.0%}: {fdr['why']}."
    )
    refused = [f"{t}: {r}" for t, r in verdict.get("refused", {}).items()]
    md = [f"# Universe {verdict['universe']}", "", f"**{verdict['headline']}**", "", method, ""]
    md += [_markdown(table) if not table.empty else "(no ticker promoted)", ""]
    if image:
        md += ["The skills with their intervals are plotted in universe_report.html.", ""]
    if refused:
        md += ["Refused before any work (not in the family):", *[f"* {line}" for line in refused]]
    body = [
        f"<h1>Universe {html.escape(verdict['universe'])}</h1>",
        f"<p class='good'>{html.escape(verdict['headline'])}</p>",
        f"<p>{html.escape(method)}</p>",
        table.to_html(index=False, escape=True)
        if not table.empty
        else "<p>(no ticker promoted)</p>",
    ]
    if image:
        body.append(
            f"<img alt='skill with interval per ticker' src='data:image/png;base64,{image}'>"
        )
    if refused:
        body.append("<p>Refused before any work (not in the family):</p><ul>")
        body += [f"<li>{html.escape(line)}</li>" for line in refused]
        body.append("</ul>")
    page = f"<!doctype html><html><head><meta charset='utf-8'><title>Universe {html.escape(verdict['universe'])}</title><style>{_CSS}</style></head><body>{''.join(body)}</body></html>"
    paths = (Path(out_dir) / "universe_report.html", Path(out_dir) / "universe_report.md")
    for path, text in zip(paths, (page, "\n".join(md) + "\n"), strict=True):
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return paths
