"""How report.html and report.md lay out their tables: every table fits a 1400 px page.

A table overflows when its columns' unbreakable contents add up to more than the page, so
cells are written as text (5 significant digits, empty for a missing value), headers may
break after an underscore (``objective_std``), and an audit's ``<part>_first``/``_last`` row and
time columns become one range per part (``15..337``, ``2020-01-01 16:00 .. 2020-01-15
02:00``), which wraps at its spaces. tests/promotion/test_report.py checks the page in the default
suite (CSS and column counts) and in headless Chromium (slow).
"""

from __future__ import annotations

import html
import math

import numpy as np
import pandas as pd

__all__ = ["CSS", "PAGE_WIDTH", "audit_view", "cells", "table_html", "table_md"]

PAGE_WIDTH = 1400  # px: the narrowest browser window the report is laid out for
CSS = """body{font-family:system-ui,sans-serif;max-width:1300px;margin:2em auto;padding:0 1em;
color:#222}
table{border-collapse:collapse;font-size:12px;margin:.5em 0;max-width:100%}
td,th{border:1px solid #ccc;padding:3px 6px;text-align:right;vertical-align:top}
th{background:#f2f2f2}
.bad{color:#b00;font-weight:bold}.good{color:#070}.caption{font-size:13px;color:#444}
img{max-width:100%;border:1px solid #eee}h2{border-bottom:1px solid #ddd;margin-top:1.6em}"""

# An audit's row/time columns per part, in the order they are shown.
_PARTS = (("train", "train"), ("stop", "early-stopping"), ("eval", "evaluation"))


def _cell(v) -> str:
    if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, (float, np.floating)):
        return f"{v:.5g}"
    if isinstance(v, np.generic):
        v = v.item()
    return str(v)


def cells(frame: pd.DataFrame) -> pd.DataFrame:
    """Every cell as the text shown: 5 significant digits, nothing for a missing value."""
    return frame.astype(object).map(_cell)


def _short_time(value) -> str:
    """'2020-01-15 19:00' from '2020-01-15T19:00:00' or a Timestamp (seconds when not 0)."""
    text = _cell(value).replace("T", " ")
    return text[:-3] if text.endswith(":00") and len(text) == 19 else text


def audit_view(audit: pd.DataFrame) -> pd.DataFrame:
    """The fold (or split) audit with one rows column and one time column per part."""
    out = pd.DataFrame(index=audit.index)
    used: set[str] = set()
    lead = [c for c in ("fold", "part") if c in audit.columns]
    for c in lead:
        out[c] = audit[c]
    used.update(lead)
    sizes = {"train": "n_train", "stop": "n_stop", "eval": "n_eval"}
    for part, label in _PARTS:
        first, last = f"{part}_first", f"{part}_last"
        if first not in audit.columns or last not in audit.columns:
            continue
        size = sizes[part] if sizes[part] in audit.columns else None
        n = audit[size].map(lambda v: f"{int(v):,} samples, ") if size else ""
        out[f"{label} rows"] = n + audit[first].map(_cell) + ".." + audit[last].map(_cell)
        times = (f"{part}_first_time", f"{part}_last_time")
        if all(t in audit.columns for t in times):
            out[f"{label} time"] = (
                audit[times[0]].map(_short_time) + " .. " + audit[times[1]].map(_short_time)
            )
            used.update(times)
        used.update((first, last, *([size] if size else [])))
    if "n_fit" in audit.columns:  # the fold's training samples after the early-stopping cut
        out["fit samples"] = audit["n_fit"]
        used.add("n_fit")
    for c in audit.columns:
        if c not in used:
            out[c] = audit[c]
    return out


def table_html(frame: pd.DataFrame) -> str:
    # A header may break after an underscore (objective_<wbr>std), not inside a word.
    head = "".join(f"<th>{html.escape(str(c)).replace('_', '_<wbr>')}</th>" for c in frame.columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>"
        for row in cells(frame).itertuples(index=False)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def table_md(frame: pd.DataFrame) -> str:
    """A GitHub-style markdown table (pandas' to_markdown needs an extra package)."""
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += [
        "| " + " | ".join(v.replace("|", "/") for v in row) + " |"
        for row in cells(frame).itertuples(index=False)
    ]
    return "\n".join(lines)
