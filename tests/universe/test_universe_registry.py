"""A universe's registered versions after its verdict (orchestrator/models/universe_registry.py), on
a real MLflow registry (sqlite): champion only for the tickers that survive the FDR."""

from __future__ import annotations

from mlflow.tracking import MlflowClient

from orchestrator.models.universe_registry import alias_line, settle_aliases


def _register(client: MlflowClient, name: str, alias: str, source: str):
    client.create_registered_model(name)
    version = client.create_model_version(name, source=source).version
    client.set_registered_model_alias(name, alias, version)
    return version


def test_champion_only_for_the_fdr_winners(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    source = str(tmp_path / "model")
    (tmp_path / "model").mkdir()
    win = _register(client, "lstm-u-AAA", "champion", source)
    chance = _register(client, "lstm-u-BBB", "champion", source)
    weak = _register(client, "lstm-u-CCC", "candidate", source)

    def row(name, version, alias, adjusted, winner):
        info = {"registered_model": name, "version": int(version), "alias": alias}
        return {"mlflow": info, "adjusted_p": adjusted, "winner": winner}

    verdict = {
        "universe": "u",
        "tickers": {
            "AAA": row("lstm-u-AAA", win, "champion", 0.01, True),
            "BBB": row("lstm-u-BBB", chance, "champion", 0.3, False),
            "CCC": row("lstm-u-CCC", weak, "candidate", 0.9, False),
            "DDD": {"mlflow": None, "adjusted_p": 1.0, "winner": False},  # not registered
        },
    }
    aliases = settle_aliases(uri, verdict, log=lambda *_: None)
    assert aliases == {"AAA": "champion", "BBB": "candidate", "CCC": "candidate"}
    assert client.get_model_version_by_alias("lstm-u-AAA", "champion").version == win
    assert "champion" not in client.get_registered_model("lstm-u-BBB").aliases
    assert client.get_model_version_by_alias("lstm-u-BBB", "candidate").version == chance
    tags = client.get_model_version("lstm-u-BBB", chance).tags
    assert tags["universe"] == "u" and tags["universe_winner"] == "false"
    assert float(tags["universe_adjusted_p"]) == 0.3
    assert client.get_model_version("lstm-u-AAA", win).tags["universe_winner"] == "true"
    line = alias_line("BBB", verdict["tickers"]["BBB"], aliases["BBB"])
    assert line and "not after the adjustment" in line and "lstm-u-BBB@candidate" in line
    assert alias_line("CCC", verdict["tickers"]["CCC"], aliases["CCC"]) is None


def test_an_unreachable_store_is_one_line(tmp_path):
    lines: list[str] = []
    verdict = {
        "universe": "u",
        "tickers": {
            "AAA": {
                "mlflow": {"registered_model": "m", "version": 1, "alias": "champion"},
                "adjusted_p": 0.5,
                "winner": False,
            }
        },
    }
    assert settle_aliases("http://127.0.0.1:9", verdict, log=lines.append) == {}
    assert len(lines) == 1 and "not on the registered versions" in lines[0]
