"""Each parameter's facts live on its TrainConfig field; the docs, the CLI flags, ModelSpec,
DATA_SETTINGS and --task are derived from them or checked against them here."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

import trainables.train as train_cli
from orchestrator.promotion.holdout import DATA_SETTINGS, check_settings
from orchestrator.tune import parse_args
from trainables.errors import ConfigError
from trainables.parameters.fields import default_text, range_text
from trainables.parameters.train_config import ALIASES, SECTIONS, TrainConfig, choices_of, specs
from trainables.training.network import ModelSpec

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "parameters.md"
ROW = re.compile(r"^\| `(\w+)` \| (.*?) \| (.*?) \| (.*) \|$")


def _doc_rows() -> dict[str, list[tuple[str, str, str, str]]]:
    """name -> [(section, default, range, effect)] of every parameter row in the doc."""
    rows: dict[str, list] = {}
    section = ""
    for line in DOC.read_text().splitlines():
        if line.startswith("## "):
            section = line[3:].split(" (")[0].strip()  # "Final split (`python -m ...`)"
        m = ROW.match(line)
        if m and section in SECTIONS:
            rows.setdefault(m.group(1), []).append((section, *m.groups()[1:]))
    return rows


def test_every_parameter_has_exactly_one_row_in_its_section():
    # Rule: docs/parameters.md documents each TrainConfig field once, under its section.
    rows = _doc_rows()
    assert sorted(rows) == sorted(specs())
    for name, spec in specs().items():
        assert len(rows[name]) == 1, name
        assert rows[name][0][0] == spec.param.section, name


@pytest.mark.parametrize("name", list(specs()))
def test_doc_row_states_the_fields_default_range_and_aliases(name):
    # Rule: the doc's default and range are the field's, and its aliases are named.
    spec = specs()[name]
    _, default, allowed, effect = _doc_rows()[name][0]
    assert (default, allowed) == (default_text(spec.default), range_text(spec))
    for alias in spec.aliases:
        assert f"`{alias}" in effect, f"{name}: alias {alias} is not named in its row"


def test_train_help_lists_every_parameter_with_its_default(monkeypatch):
    # Rule: `python -m trainables.train --help` shows each parameter, its range and default.
    monkeypatch.setenv("COLUMNS", "1000")  # one line per flag (or two after a long one)
    blocks = re.split(r"\n(?=  -)", train_cli._parser().format_help())
    for name, spec in specs().items():
        block = next((b for b in blocks if b.strip().startswith(f"--{name} ")), "")
        assert f"(default: {default_text(spec.default)}" in block, name
        if not spec.param.choices and spec.kind is not bool:
            assert range_text(spec) in block, name
    assert not [b for b in blocks if b.strip().startswith("--seq_len")]  # named in its line


def test_every_flag_and_alias_sets_its_parameter():
    # Rule: each generated flag lands on its field, also when written with dashes or '='.
    cfg, _ = train_cli.build_config(
        ["--hidden-size", "12", "--seq_len=9", "--lr", "2e-3", "--amp", "off", "--ticker", "007"]
    )
    assert (cfg.hidden_size, cfg.sequence_length, cfg.learning_rate) == (12, 9, 2e-3)
    assert (cfg.amp, cfg.ticker) == ("off", "007")
    with pytest.raises(ConfigError, match="given twice with different values"):
        train_cli.build_config(["--seq_len", "9", "--sequence_length", "10"])
    with pytest.raises(ConfigError, match="unexpected argument 'oops'"):
        train_cli.build_config(["oops"])


def test_model_spec_is_the_model_fields_of_the_config():
    # Rule: ModelSpec holds exactly the fields marked model=True, with TrainConfig's defaults.
    fields = {f.name: f.default for f in dataclasses.fields(ModelSpec)}
    model = {n: s.default for n, s in specs().items() if s.param.model}
    assert fields == model
    cfg = TrainConfig(hidden_size=32, cell="gru", attention=True, attention_heads=8)
    assert ModelSpec.of(cfg) == ModelSpec(
        hidden_size=32, cell="gru", attention=True, attention_heads=8
    )


@pytest.mark.parametrize("name", list(specs()))
def test_promotion_refuses_exactly_the_data_settings(name):
    # Rule: promotion --set may change any parameter but those marked data=True.
    value = specs()[name].default
    if specs()[name].param.data:
        with pytest.raises(ConfigError, match=f"--set {name}: promotion keeps"):
            check_settings({name: value})
    else:
        check_settings({name: value})
    assert set(DATA_SETTINGS) == {n for n, s in specs().items() if s.param.data}


def test_aliases_of_data_settings_are_refused_too():
    # Rule: a data setting under another name is still a data setting.
    for alias, name in ALIASES.items():
        if name in DATA_SETTINGS:
            with pytest.raises(ConfigError, match=f"--set {alias} \\({name}\\)"):
                check_settings({alias: 1})


def test_tune_task_choices_are_the_configs():
    # Rule: orchestrator.tune --task takes what TrainConfig.task takes.
    for task in choices_of("task"):
        assert parse_args(["--task", task]).task == task
    with pytest.raises(ConfigError, match="invalid choice: 'ranking'"):
        parse_args(["--task", "ranking"])


def test_no_file_cites_the_users_documents_by_file_name():
    # Rule: code and docs cite docs/ pages; the users' own files are not in this repository.
    names = (
        "lstm-training-" + "guide.md",
        "lstm-training-" + "parameters.md",
        "training-" + "process.md",
    )
    files = [ROOT / "README.md", *ROOT.glob("benchmarks/*"), *ROOT.glob("docs/*.md")]
    for folder in ("orchestrator", "trainables", "tests", "search_spaces"):
        files += ROOT.glob(f"{folder}/*")
    cited = [
        f"{p.relative_to(ROOT)}: {n}"
        for p in files
        if p.is_file() and p.suffix in (".py", ".md", ".yaml")
        for n in names
        if n in p.read_text(encoding="utf-8")
    ]
    assert cited == []


def test_promotion_doc_lists_the_data_settings():
    # Rule: docs/promotion.md names exactly the parameters marked data=True.
    text = " ".join((ROOT / "docs" / "promotion.md").read_text().split())
    listed = re.search(r"may not change the data settings \(`([^`]*)`", text).group(1)
    assert tuple(n.strip() for n in listed.split(",")) == DATA_SETTINGS
