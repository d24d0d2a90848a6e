"""Error lines that name the right thing (#21 defect 9): the byte offset of a non-UTF-8
byte in the file (the reader counted from its chunk), the file whose rows are too few for
the horizon (the line named no file)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from trainables.bars.files import load_bars
from trainables.bars.synthetic import make_bars
from trainables.errors import DataError
from trainables.train import main as train_main

HEAD = b"timestamp,open,high,low,close,volume\n"
ROW = b"2020-01-01 00:00:00,1,1,1,1,1\n"
LAST = b"2020-01-02 00:00:00,1,1,1,1"


@pytest.mark.parametrize("rows", [0, 1, 168, 400, 40_000])  # 40,000 rows cross 1 MB chunks
@pytest.mark.parametrize("bad", [b"\xff", b"\xc3(", b"\xe2\x82\n"])
@pytest.mark.parametrize("gz", [False, True])
def test_a_non_utf8_byte_is_named_at_its_offset_in_the_file(tmp_path, rows, bad, gz):
    data = HEAD + ROW * rows + LAST + bad + b"\n"
    offset = len(HEAD + ROW * rows + LAST)
    path = tmp_path / ("bars.csv.gz" if gz else "bars.csv")
    path.write_bytes(gzip.compress(data) if gz else data)
    with pytest.raises(DataError) as err:
        load_bars(path)
    assert str(err.value) == (
        f"{path}: cannot read as CSV: not UTF-8 text (byte {bad[0]:#04x} at byte {offset:,}); "
        "save the file as UTF-8"
    )


def test_too_few_rows_for_the_horizon_names_the_file(tmp_path, capsys):
    path = tmp_path / "two.csv"
    make_bars(40, seed=0).iloc[:2].to_csv(path)
    # log_return takes one warm-up row: 2 bars, 1 feature row, no label one bar ahead
    args = ["--f_cols", "log_return", "--target_col", "log_return", "--epochs", "1"]
    code = train_main(["--data", str(path), "--out", str(tmp_path / "run"), *args])
    err = capsys.readouterr().err
    assert code == 2
    assert err == f"error: {path}: horizon=1 leaves no labelled rows among 1 feature rows\n"
    assert not Path(tmp_path / "run").exists()
