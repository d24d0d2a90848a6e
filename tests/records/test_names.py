"""Names stay inside --results-dir (#21 defect 2), and tickers have a reversible folder.

The CLI tests run the real commands on real folders and check that nothing was written
outside (or inside) the results folder; the ticker encoding is property-tested on real
folders of this file system (round trip, one component, no collision, also when case is
folded as macOS and Windows do)."""

from __future__ import annotations

import json
import os
import string
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from orchestrator.promotion.holdout import read_sweep
from orchestrator.promotion.run import main as promote_main
from orchestrator.records.names import (
    MAX_NAME,
    check_existing_name,
    check_new_name,
    decode_ticker,
    encode_ticker,
    safe_stem,
)
from orchestrator.records.sweep_record import read_record
from orchestrator.sweep.spec import SweepSpec
from orchestrator.tune import main as tune_main
from trainables.errors import ConfigError

BAD_NAMES = [
    "../escape",
    "..",
    ".",
    "a/b",
    "/abs/path",
    "x\ny",
    "x" * 300,
    "x" * (MAX_NAME + 1),
    "",
    "-flag",
    ".hidden",
    "sp ace",
    "naïve",
    "mlflow.db",
    "mlartifacts",
    "a\\b",
]


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("name", BAD_NAMES)
def test_a_new_sweep_name_that_leaves_its_folder_is_one_line_exit_2_and_nothing_written(
    name, tmp_path, capsys, monkeypatch
):
    # Rule: a new name is one path component of letters, digits, - _ . (not first: - .),
    # at most MAX_NAME characters; anything else fails before any work.
    work = tmp_path / "work"
    (work / "results").mkdir(parents=True)
    monkeypatch.chdir(work)
    code = tune_main(["--smoke-test", f"--name={name}", "--no-dashboard"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("error: --name"), err
    assert len(err) < 400  # a 300-character name is not echoed in full
    assert _files(tmp_path) == ["work", "work/results"]


@pytest.mark.parametrize("command", ["show", "report", "predict"])
def test_reading_commands_keep_names_inside_the_results_folder(command, tmp_path, capsys):
    # show, report (which writes report.html into the folder) and predict --name took
    # '../<sweep>' and read (or wrote) outside --results-dir; they refuse it as promote does.
    from orchestrator.models.predict import main as predict_main
    from orchestrator.promotion.report import main as report_main
    from orchestrator.show import main as show_main

    main = {"show": show_main, "report": report_main, "predict": predict_main}[command]
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "sweep.json").write_text(json.dumps({"name": "elsewhere"}))
    (tmp_path / "results").mkdir()
    code = main(["--name", "../elsewhere", "--results-dir", str(tmp_path / "results")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("error: --name '../elsewhere' is not one folder name"), err
    assert _files(tmp_path) == ["elsewhere", "elsewhere/sweep.json", "results"]


@pytest.mark.parametrize(
    ("command", "said"),
    [
        ("show", "error: unrecognized arguments: --nmae s"),
        ("report", "error: unrecognized arguments: --nmae (the following arguments are required: --name)"),
        ("promote", "error: unrecognized arguments: --nmae (the following arguments are required: --name)"),
    ],
)
def test_a_misspelt_flag_is_named_in_one_line(command, said, capsys):
    # show and report printed argparse's usage block; promote named the missing --name
    # instead of the misspelt flag the user has to fix.
    from orchestrator.promotion.report import main as report_main
    from orchestrator.show import main as show_main

    main = {"show": show_main, "report": report_main, "promote": promote_main}[command]
    assert main(["--nmae", "s"]) == 2
    assert capsys.readouterr().err == said + "\n"


@pytest.mark.parametrize("name", ["aapl-daily_v2", "s", "1h.run", "_x", "A" * MAX_NAME])
def test_good_names_pass(name):
    assert check_new_name(name) == name


def test_the_default_name_of_any_space_file_is_a_valid_name(tmp_path):
    # Rule: --space 'my space (v2).yaml' still gives a name the rule accepts.
    spec = SweepSpec(space=str(tmp_path / "my space (v2).yaml"))
    check_new_name(spec.sweep_name)
    assert spec.sweep_name.startswith("my_space__v2_-")
    assert safe_stem(".x") == "_.x" and safe_stem("-x") == "_-x"


def test_a_name_read_back_from_a_tampered_record_is_refused(tmp_path, capsys):
    # Rule: the same for a name read from sweep.json: '../../x' is never a sweep's name.
    folder = tmp_path / "r" / "s"
    folder.mkdir(parents=True)
    (folder / "sweep.json").write_text(json.dumps({"name": "../../x", "space": "smoke"}))
    for read in (read_record, read_sweep):
        with pytest.raises(ConfigError, match=r"sweep.json: name '\.\./\.\./x' is not one folder"):
            read(folder)
    code = promote_main(["--name", "s", "--results-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "not one folder name" in err
    assert _files(tmp_path) == ["r", "r/s", "r/s/sweep.json"]


def test_an_older_sweep_whose_name_breaks_the_rule_stays_readable(tmp_path):
    # Rule: only new names are refused; promote and --resume find an existing 'my sweep'.
    folder = tmp_path / "r" / "my sweep"
    folder.mkdir(parents=True)
    (folder / "sweep.json").write_text(json.dumps({"name": "my sweep", "space": "smoke"}))
    assert read_sweep(folder)["name"] == "my sweep"
    assert check_existing_name("my sweep") == "my sweep"
    with pytest.raises(ConfigError):
        check_new_name("my sweep")


# --- tickers ---------------------------------------------------------------------------------

EXAMPLES = [
    "BRK.B",
    "BTC/USD",
    "^GSPC",
    "7203.T",
    "aapl",
    "AAPL",
    "EUR=X",
    "CON",
    "-X",
    "ß",
    "日経",
]
# 15 characters of up to 4 UTF-8 bytes, 3 characters each: within MAX_TICKER_FOLDER
tickers = st.text(min_size=1, max_size=15) | st.sampled_from(EXAMPLES)


def _safe_component(folder: str) -> None:
    assert folder and folder not in (".", "..")
    assert set(folder) <= set(string.ascii_letters + string.digits + "-_")
    assert not folder.startswith("-")
    assert len(folder.encode()) <= 255


@settings(max_examples=300, deadline=None)
@given(tickers)
@example("BRK.B")
@example("BTC/USD")
@example("../../etc")
def test_a_ticker_folder_is_one_safe_component_that_decodes_back_exactly(ticker):
    folder = encode_ticker(ticker)
    _safe_component(folder)
    assert decode_ticker(folder) == ticker


@settings(max_examples=100, deadline=None)
@given(st.lists(tickers, min_size=2, max_size=12, unique=True))
def test_no_two_tickers_share_a_folder_even_when_case_is_folded(tmp_path_factory, group):
    # Rule: distinct tickers, distinct folders, also on a case-insensitive file system; on
    # this one, each folder is made inside the base folder and holds its own file.
    folders = [encode_ticker(t) for t in group]
    assert len({f.lower() for f in folders}) == len(group)
    base = tmp_path_factory.mktemp("tickers")
    for ticker, folder in zip(group, folders, strict=True):
        path = base / folder
        path.mkdir()
        assert path.resolve().parent == base.resolve()
        (path / "ticker.txt").write_bytes(ticker.encode("utf-8"))
    assert sorted(os.listdir(base)) == sorted(folders)
    for folder in os.listdir(base):
        assert decode_ticker(folder) == (base / folder / "ticker.txt").read_bytes().decode()


def test_readable_examples_and_what_is_not_a_ticker_folder():
    assert encode_ticker("BRK.B") == "BRK_2eB"
    assert encode_ticker("BTC/USD") == "BTC_2fUSD"
    assert encode_ticker("^GSPC") == "_5eGSPC"
    assert encode_ticker("AAPL") == "AAPL" and encode_ticker("BRK-B") == "BRK-B"
    assert encode_ticker("CON") == "_43ON"  # a Windows device name
    for folder in ("", "aapl", "_4", "_4A", "_ff", "..", "_41APL", "x/y"):
        with pytest.raises(ConfigError):
            decode_ticker(folder)  # lower case, half escapes, non-UTF-8, non-canonical
    with pytest.raises(ConfigError):
        encode_ticker("")
    with pytest.raises(ConfigError, match="too long"):
        encode_ticker("日" * 40)
