"""Search spaces: every shipped file loads and samples valid configs, Optuna and Ray Tune
see the same distributions, and every malformed file fails with a message naming the file,
the parameter and the numbers."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from ray.tune.search.optuna import OptunaSearch

from orchestrator.sweep.spaces import (
    SPACES_DIR,
    list_spaces,
    load_space,
    sample_configs,
    to_optuna,
)
from trainables.errors import ConfigError

SHIPPED = list_spaces()

# One parameter of every kind the YAML format can express.
EVERY_KIND = """\
params:
  learning_rate: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
  grad_clip: {type: float, low: 0.5, high: 5.0, step: 0.5}
  dropout: {type: float, low: 0.0, high: 0.5}
  hidden_size: {type: int, low: 16, high: 300, log: true}
  patience: {type: int, low: 5, high: 30, step: 5}
  num_layers: {type: int, low: 1, high: 4}
  batch_size: {type: categorical, choices: [auto, 32, 64]}
  bidirectional: {type: categorical, choices: [false, true]}
"""


def _write(tmp_path: Path, body: str, *, name: str = "bad") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"# python -m orchestrator.tune --space {path}\n{body}", encoding="utf-8")
    return path


def _inside(value: object, dist: dict) -> bool:
    """Whether ``value`` is one the YAML distribution ``dist`` allows (bounds inclusive)."""
    if dist["type"] == "categorical":
        return any(type(value) is type(c) and value == c for c in dist["choices"])
    if dist["type"] == "int" and (isinstance(value, bool) or not isinstance(value, int)):
        return False
    low, high, step = dist["low"], dist["high"], dist["step"]
    tol = 1e-9 * max(1.0, abs(high))
    if not low - tol <= value <= high + tol:
        return False
    if step:
        k = (value - low) / step
        return math.isclose(k, round(k), abs_tol=1e-6)
    return True


@pytest.fixture(scope="module")
def every_kind(tmp_path_factory: pytest.TempPathFactory):
    return load_space(_write(tmp_path_factory.mktemp("kinds"), EVERY_KIND, name="kinds"))


def test_the_three_spaces_ship():
    # --space cpu, gpu, quick, daily and smoke are available by name
    assert {"cpu", "gpu", "quick", "daily", "smoke"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_first_line_shows_how_to_run_the_file(name):
    # every space file opens with a comment showing the command that runs it
    first = (SPACES_DIR / f"{name}.yaml").read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("#")
    assert "python -m orchestrator.tune" in first
    assert f"--space {name}" in first


@pytest.mark.parametrize("name", SHIPPED)
def test_samples_stay_inside_the_declared_ranges(name):
    # every shipped file samples configs whose values lie in their ranges, plus the fixed values
    space = load_space(name)
    configs = sample_configs(space, 30, seed=1)
    assert len(configs) == 30
    for config in configs:
        assert set(config) == set(space.params) | set(space.fixed)
        for key, value in space.fixed.items():
            assert config[key] == value
        for key, dist in space.params.items():
            assert _inside(config[key], dist), f"{name}: {key}={config[key]!r} outside {dist}"


@pytest.mark.parametrize("name", SHIPPED)
def test_sampled_configs_are_accepted_by_train_config(name):
    # what a space samples is a valid training config
    from trainables.parameters.train_config import TrainConfig

    for config in sample_configs(load_space(name), 20, seed=2):
        TrainConfig.from_dict(dict(config))


def test_gpu_space_is_the_guides_table_with_the_probe_picking_the_batch():
    # gpu.yaml holds the guide's hyperparameter ranges (docs/parameters.md), value for value, but
    # the batch size (128-1024 there) is the GPU probe's choice
    guide = {
        "hidden_size": [128, 256, 512],
        "num_layers": [1, 2, 3],
        "dropout": [0.2, 0.3, 0.4, 0.5],
        "sequence_length": [30, 60, 120],
        "learning_rate": [0.0001, 0.0005, 0.001, 0.003],
        "weight_decay": [0.0, 0.0001, 0.001],
    }
    space = load_space("gpu")
    assert {k: d["choices"] for k, d in space.params.items()} == guide
    assert space.fixed["batch_size"] == "auto"


def test_same_seed_samples_the_same_configs():
    # a seeded draw is reproducible
    space = load_space("daily")
    assert sample_configs(space, 5, seed=7) == sample_configs(space, 5, seed=7)


def test_name_and_path_load_the_same_space():
    # --space smoke and --space search_spaces/smoke.yaml mean the same thing
    assert load_space("smoke") == load_space(SPACES_DIR / "smoke.yaml")
    assert load_space("smoke") == load_space(str(SPACES_DIR / "smoke.yaml"))


@pytest.mark.parametrize("name", [*SHIPPED, "every-kind"])
def test_optuna_search_accepts_the_space(name, every_kind):
    # Ray's OptunaSearch takes to_optuna(space) and suggests configs inside the ranges
    space = every_kind if name == "every-kind" else load_space(name)
    searcher = OptunaSearch(space=to_optuna(space), metric="objective", mode="min", seed=0)
    for i in range(5):
        config = searcher.suggest(f"trial_{i}")
        assert set(config) == set(space.params)
        for key, dist in space.params.items():
            assert _inside(config[key], dist), f"{key}={config[key]!r} outside {dist}"


def test_exponent_without_a_dot_reads_as_a_number(tmp_path):
    # 1e-4 is a float, not the text "1e-4" (PyYAML alone would read text)
    body = (
        "params:\n"
        "  learning_rate: {type: float, low: 1e-4, high: 1e-2, log: true}\n"
        "  weight_decay: {type: categorical, choices: [0, 1e-5]}\n"
    )
    space = load_space(_write(tmp_path, body))
    assert space.params["learning_rate"]["low"] == 1e-4
    assert space.params["weight_decay"]["choices"] == [0, 1e-5]


def test_fixed_accepts_a_list_of_columns(tmp_path):
    # a fixed value may be a list, e.g. the feature columns of every trial
    body = "fixed:\n  f_cols: [close, volume]\nparams:\n  dropout: {type: float, low: 0.0, high: 0.5}\n"
    space = load_space(_write(tmp_path, body))
    assert all(c["f_cols"] == ["close", "volume"] for c in sample_configs(space, 3, seed=0))


BROKEN = {
    "unknown type": (
        "params:\n  learning_rate: {type: uniform, low: 0.1, high: 0.2}\n",
        ["learning_rate", "'uniform'"],
    ),
    "low above high": (
        "params:\n  dropout: {type: float, low: 0.5, high: 0.1}\n",
        ["dropout", "low=0.5", "high=0.1"],
    ),
    "float log from zero": (
        "params:\n  learning_rate: {type: float, low: 0.0, high: 0.01, log: true}\n",
        ["learning_rate", "low=0.0", "low > 0"],
    ),
    "int log from zero": (
        "params:\n  hidden_size: {type: int, low: 0, high: 64, log: true}\n",
        ["hidden_size", "low=0", "low >= 1"],
    ),
    "step with log": (
        "params:\n  grad_clip: {type: float, low: 0.5, high: 5.0, log: true, step: 0.5}\n",
        ["grad_clip", "step=0.5", "log"],
    ),
    "empty choices": (
        "params:\n  optimizer: {type: categorical, choices: []}\n",
        ["optimizer", "choices"],
    ),
    "choice twice": (
        "params:\n  optimizer: {type: categorical, choices: [adam, adam]}\n",
        ["optimizer", "'adam'"],
    ),
    "misspelt parameter": (
        "params:\n  hiden_size: {type: int, low: 8, high: 64}\n",
        ["hiden_size", "did you mean 'hidden_size'"],
    ),
    "older alias of a parameter": (
        "params:\n  seq_len: {type: categorical, choices: [10, 20]}\n",
        ["seq_len", "'sequence_length'"],
    ),
    "misspelt fixed parameter": (
        "fixed:\n  epoch: 3\nparams:\n  dropout: {type: float, low: 0.0, high: 0.5}\n",
        ["epoch", "did you mean 'epochs'"],
    ),
    "fixed and searched": (
        "fixed:\n  dropout: 0.1\nparams:\n  dropout: {type: float, low: 0.0, high: 0.5}\n",
        ["dropout", "dropout=0.1", "both fixed"],
    ),
    "step off the grid": (
        "params:\n  patience: {type: int, low: 5, high: 30, step: 4}\n",
        ["patience", "low=5", "high=30", "step=4"],
    ),
    "missing bound": (
        "params:\n  dropout: {type: float, high: 0.5}\n",
        ["dropout", "'low:'"],
    ),
    "bound not a number": (
        "params:\n  dropout: {type: float, low: abc, high: 0.5}\n",
        ["dropout", "low='abc'"],
    ),
    "float bound on an int": (
        "params:\n  num_layers: {type: int, low: 1, high: 2.5}\n",
        ["num_layers", "high=2.5"],
    ),
    "misspelt key": (
        "params:\n  dropout: {type: float, lo: 0.0, high: 0.5}\n",
        ["dropout", "'lo'", "did you mean 'low'"],
    ),
    "list instead of a distribution": (
        "params:\n  batch_size: [16, 32]\n",
        ["batch_size", "type: categorical"],
    ),
    "key twice": (
        "params:\n"
        "  dropout: {type: float, low: 0.0, high: 0.5}\n"
        "  dropout: {type: float, low: 0.1, high: 0.2}\n",
        ["dropout", "twice", "bad.yaml:4"],
    ),
}


@pytest.mark.parametrize(("body", "expected"), BROKEN.values(), ids=BROKEN.keys())
def test_broken_parameter_names_file_parameter_and_numbers(tmp_path, body, expected):
    # a malformed parameter raises ConfigError naming the file, the parameter and the numbers
    path = _write(tmp_path, body)
    with pytest.raises(ConfigError) as err:
        load_space(path)
    message = str(err.value)
    assert str(path) in message
    for part in expected:
        assert part in message


BROKEN_FILE = {
    "misspelt top-level key": (
        "param:\n  dropout: {type: float, low: 0.0, high: 0.5}\n",
        ["'param'", "did you mean 'params'"],
    ),
    "name differs from the file": (
        "name: other\nparams:\n  dropout: {type: float, low: 0.0, high: 0.5}\n",
        ["name='other'", "'bad'"],
    ),
    "no params": ("fixed:\n  epochs: 3\n", ["params"]),
    "not a mapping": ("- dropout\n- epochs\n", ["mapping", "list"]),
    "syntax error": (
        "params:\n  dropout: {type: float, low: 0.0, high: 0.5}\n\tnum_layers: 2\n",
        ["bad.yaml:4", "invalid YAML"],
    ),
}


@pytest.mark.parametrize(("body", "expected"), BROKEN_FILE.values(), ids=BROKEN_FILE.keys())
def test_broken_file_names_file_and_cause(tmp_path, body, expected):
    # a malformed file raises ConfigError naming the file (and line) and what is wrong
    path = _write(tmp_path, body)
    with pytest.raises(ConfigError) as err:
        load_space(path)
    message = str(err.value)
    assert str(path) in message
    for part in expected:
        assert part in message


def test_unknown_space_lists_the_available_ones():
    # --space with a name that has no file says which names exist
    with pytest.raises(ConfigError) as err:
        load_space("nosuchspace")
    message = str(err.value)
    assert "nosuchspace" in message
    for name in SHIPPED:
        assert name in message


def test_missing_path_is_a_config_error(tmp_path):
    # a path to a file that does not exist names that path
    path = tmp_path / "gone.yaml"
    with pytest.raises(ConfigError, match="gone.yaml"):
        load_space(path)


def test_the_cpu_space_trains_lstms_and_quick_still_searches_both_cells():
    # Rule (search_spaces/cpu.yaml, benchmarks/README.md "The cpu space's cell"): on a CPU a
    # GRU trains 1.5-3x slower than an LSTM for no better a best trial, so every trial of the
    # space the bare command picks without a GPU is an LSTM; the quick space still samples
    # both cells (the cell stays searchable where a space asks for it).
    cpu = load_space("cpu")
    assert "cell" not in cpu.params and cpu.fixed["cell"] == "lstm"
    assert {c["cell"] for c in sample_configs(cpu, 30, seed=1)} == {"lstm"}
    quick = load_space("quick")
    assert {c["cell"] for c in sample_configs(quick, 30, seed=1)} == {"lstm", "gru"}
