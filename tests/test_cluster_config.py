"""cluster.yaml: valid for the installed Ray's `ray up`, and secure.

Checked offline (no AWS): the schema shipped inside the installed ray package, Ray's own
config checks, the `ray start` flags against Ray's CLI, and the security rules: no dashboard
(8265), Ray client (10001) or GCS/Redis (6379) port open in any security-group rule, nothing
but SSH open to the whole internet, the dashboard bound to localhost, token authentication
on for every node. Each rule is also run on a broken copy, to show that it can fail.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import re
import shlex
from pathlib import Path

import click
import jsonschema
import pytest
import ray
import yaml
from packaging.requirements import Requirement
from packaging.version import Version
from ray.scripts.scripts import start as ray_start_cli

ROOT = Path(__file__).resolve().parents[1]
CLUSTER_YAML = ROOT / "cluster.yaml"
SCHEMA = Path(ray.__file__).parent / "autoscaler" / "ray-schema.json"
PRIVATE_PORTS = {8265: "dashboard", 10001: "Ray client", 6379: "GCS/Redis"}
WORLD = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))
LOCALHOST = {"127.0.0.1", "localhost", "::1"}
PROJECT_DIR = "/home/ubuntu/lstm-orchestrator"


@pytest.fixture
def cfg() -> dict:
    return yaml.safe_load(CLUSTER_YAML.read_text())


# --- the checks -------------------------------------------------------------------------


def ingress_rules(cfg: dict) -> list[dict]:
    return cfg.get("provider", {}).get("security_group", {}).get("IpPermissions", [])


def _ports(rule: dict) -> range:
    # IpProtocol "-1" (all traffic) ignores the port fields: every port is open.
    if str(rule.get("IpProtocol")) in ("-1", "all"):
        return range(0, 65536)
    low, high = rule.get("FromPort", -1), rule.get("ToPort", -1)
    return range(0, 65536) if low == -1 else range(low, high + 1)


def _sources(rule: dict) -> list[str]:
    """Address ranges a rule admits; rules naming only security groups are node to node."""
    return (
        [r["CidrIp"] for r in rule.get("IpRanges", [])]
        + [r["CidrIpv6"] for r in rule.get("Ipv6Ranges", [])]
        + [p["PrefixListId"] for p in rule.get("PrefixListIds", [])]
    )


def open_port_problems(cfg: dict) -> list[str]:
    problems = []
    for rule in ingress_rules(cfg):
        ports, sources = _ports(rule), _sources(rule)
        if not sources:
            continue
        for port, what in PRIVATE_PORTS.items():
            if port in ports:
                problems.append(f"{what} port {port} is open to {sources}")
        world = [s for s in sources if s.startswith("pl-") or ipaddress.ip_network(s) in WORLD]
        if world and ports != range(22, 23):
            problems.append(f"ports {ports.start}-{ports.stop - 1} are open to {world}")
    return problems


def ray_start_args(command: str) -> list[list[str]]:
    """The arguments of each `ray start` in a shell command line."""
    found = []
    for part in re.split(r";|&&|\|\|", command):
        words = shlex.split(part)
        while words and ("=" in words[0] or words[0] in ("export", "exec")):
            words = words[1:]  # VAR=value prefixes, export VAR=value
        if words[:2] == ["ray", "start"]:
            found.append(words[2:])
    return found


def _option(args: list[str], name: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def dashboard_problems(cfg: dict) -> list[str]:
    problems = []
    for command in cfg.get("head_start_ray_commands", []):
        for args in ray_start_args(command):
            host = _option(args, "--dashboard-host")
            if "--head" in args and host not in LOCALHOST:
                problems.append(f"head dashboard bound to {host!r}, not 127.0.0.1: {command}")
    return problems


def _sets_token_mode(command: str) -> bool:
    # The last RAY_AUTH_MODE before `ray start` applies to it: `export RAY_AUTH_MODE=token;`
    # or a `RAY_AUTH_MODE=token ray start ...` prefix.
    modes = re.findall(r"\bRAY_AUTH_MODE=([^\s;]+)", command.split("ray start")[0])
    return bool(modes) and modes[-1].strip("'\"") == "token"


def token_problems(cfg: dict) -> list[str]:
    problems = []
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        starts = [c for c in cfg.get(key, []) if ray_start_args(c)]
        if not starts:
            problems.append(f"{key} starts no Ray")
        problems += [
            f"{key}: no RAY_AUTH_MODE=token for: {c}" for c in starts if not _sets_token_mode(c)
        ]
    mounts = cfg.get("file_mounts", {})
    if not any(remote.endswith("/.ray/auth_token") for remote in mounts):
        problems.append("file_mounts copies no ~/.ray/auth_token to the nodes")
    return problems


def ray_start_flag_problems(cfg: dict) -> list[str]:
    """Each `ray start` must parse with the installed Ray's own CLI (no unknown flag)."""
    problems = []
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        for command in cfg.get(key, []):
            for args in ray_start_args(command):
                try:
                    ray_start_cli.make_context("ray start", list(args))
                except click.UsageError as err:
                    problems.append(f"{key}: {err.format_message()}")
    return problems


def uncommented_keys(text: str) -> list[str]:
    """YAML keys with neither a comment line right above nor a comment on their line."""
    missing, previous = [], ""
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        key = re.match(r"(?:- )?([A-Za-z_][\w.\-]*):(\s|$)", stripped)
        if key and not previous.startswith("#") and " #" not in line:
            missing.append(f"line {number}: {key.group(1)}")
        if stripped:
            previous = stripped
    return missing


# --- the shipped cluster.yaml -----------------------------------------------------------


def test_cluster_yaml_matches_the_schema_shipped_with_ray(cfg):
    # cluster.yaml validates against ray/autoscaler/ray-schema.json of the installed Ray.
    jsonschema.validate(cfg, json.loads(SCHEMA.read_text()))


def test_cluster_yaml_passes_the_checks_ray_up_runs_first(cfg):
    # Ray's own defaults-merging and validation (what `ray up` runs before any AWS call).
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(copy.deepcopy(cfg)))


def test_no_dashboard_client_or_gcs_port_and_only_ssh_open_to_the_internet(cfg):
    # The only inbound rule from outside the cluster is SSH; 8265/10001/6379 never open.
    assert open_port_problems(cfg) == []
    assert [(_ports(r).start, _ports(r).stop) for r in ingress_rules(cfg)] == [(22, 23)]


def test_ssh_is_open_to_one_operator_address_not_the_world(cfg):
    # ssh_cidr is a narrow range (a /32 by default), not 0.0.0.0/0.
    for source in _sources(ingress_rules(cfg)[0]):
        assert ipaddress.ip_network(source).num_addresses <= 256, source


def test_head_dashboard_is_bound_to_localhost(cfg):
    # The dashboard listens on 127.0.0.1 only; users reach it with `ray dashboard cluster.yaml`.
    assert dashboard_problems(cfg) == []


def test_token_authentication_is_on_for_every_node(cfg):
    # RAY_AUTH_MODE=token for the head's and the workers' `ray start`, and the token is copied.
    assert token_problems(cfg) == []


def test_ray_start_commands_use_only_flags_of_the_installed_ray(cfg):
    # Every `ray start` flag exists in this Ray's CLI (a typo would fail only on `ray up`).
    assert ray_start_flag_problems(cfg) == []


def test_every_node_installs_the_project_and_a_torch_the_project_accepts(cfg):
    # The synced tree is pip-installed on head and workers, after a torch that fits pyproject.
    assert cfg["file_mounts"][PROJECT_DIR] == "."
    pyproject = (ROOT / "pyproject.toml").read_text()
    wanted = Requirement(re.search(r'"(torch[^"]*)"', pyproject).group(1)).specifier
    for key in ("head_setup_commands", "worker_setup_commands"):
        commands = cfg[key]
        torch = next(i for i, c in enumerate(commands) if "pip install torch==" in c)
        project = next(i for i, c in enumerate(commands) if f"pip install -e {PROJECT_DIR}" in c)
        assert torch < project, key
        pinned = re.search(r"torch==(\S+)", commands[torch]).group(1)
        assert Version(pinned) in wanted, (key, pinned, str(wanted))


def test_every_key_of_cluster_yaml_is_commented():
    # A user can read what each setting does without the Ray docs.
    assert uncommented_keys(CLUSTER_YAML.read_text()) == []


# --- each check on a broken copy --------------------------------------------------------


def test_schema_check_rejects_a_misspelt_key(cfg):
    # The schema check can fail: an unknown top-level key is an error.
    cfg["idle_timeout_minute"] = 5
    with pytest.raises(jsonschema.ValidationError, match="idle_timeout_minute"):
        jsonschema.validate(cfg, json.loads(SCHEMA.read_text()))


@pytest.mark.parametrize(
    "rule",
    [
        {
            "IpProtocol": "tcp",
            "FromPort": 8265,
            "ToPort": 8265,
            "IpRanges": [{"CidrIp": "203.0.113.10/32"}],
        },
        {
            "IpProtocol": "tcp",
            "FromPort": 10001,
            "ToPort": 10001,
            "IpRanges": [{"CidrIp": "10.0.0.0/8"}],
        },
        {
            "IpProtocol": "tcp",
            "FromPort": 6379,
            "ToPort": 6379,
            "Ipv6Ranges": [{"CidrIpv6": "2001:db8::/32"}],
        },
        {
            "IpProtocol": "tcp",
            "FromPort": 0,
            "ToPort": 65535,
            "IpRanges": [{"CidrIp": "203.0.113.10/32"}],
        },
        {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "203.0.113.10/32"}]},
        {
            "IpProtocol": "tcp",
            "FromPort": 443,
            "ToPort": 443,
            "IpRanges": [{"CidrIp": "0.0.0.0/0"}],
        },
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 23, "Ipv6Ranges": [{"CidrIpv6": "::/0"}]},
        {
            "IpProtocol": "tcp",
            "FromPort": 80,
            "ToPort": 80,
            "PrefixListIds": [{"PrefixListId": "pl-1"}],
        },
    ],
    ids=[
        "dashboard",
        "client",
        "redis",
        "all-ports",
        "all-traffic",
        "https-world",
        "ipv6-world",
        "prefix-list",
    ],
)
def test_open_port_check_flags_each_opened_port(cfg, rule):
    # An ingress rule opening 8265/10001/6379 (alone or in a range) or any non-SSH port to
    # the world is flagged.
    cfg["provider"]["security_group"]["IpPermissions"].append(rule)
    assert open_port_problems(cfg) != []


def test_open_port_check_allows_node_to_node_rules(cfg):
    # A rule that names only a security group (node to node) opens nothing to the outside.
    rule = {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": "sg-0123456789abcdef0"}]}
    cfg["provider"]["security_group"]["IpPermissions"].append(rule)
    assert open_port_problems(cfg) == []


@pytest.mark.parametrize("host", ["0.0.0.0", "::", None])
def test_dashboard_check_flags_a_dashboard_not_on_localhost(cfg, host):
    # --dashboard-host=0.0.0.0 (or ::, or no explicit host) is flagged.
    commands = cfg["head_start_ray_commands"]
    flag = "" if host is None else f"--dashboard-host={host}"
    cfg["head_start_ray_commands"] = [
        c.replace("--dashboard-host=127.0.0.1", flag) for c in commands
    ]
    assert dashboard_problems(cfg) != []


@pytest.mark.parametrize(
    ("key", "old", "new"),
    [
        ("head_start_ray_commands", "export RAY_AUTH_MODE=token;", ""),
        ("worker_start_ray_commands", "export RAY_AUTH_MODE=token;", ""),
        ("worker_start_ray_commands", "RAY_AUTH_MODE=token", "RAY_AUTH_MODE=disabled"),
        ("head_start_ray_commands", "ray start", "RAY_AUTH_MODE=disabled ray start"),
    ],
    ids=["head-unset", "worker-unset", "worker-disabled", "head-overridden"],
)
def test_token_check_flags_a_node_without_token_auth(cfg, key, old, new):
    # A head or worker `ray start` without RAY_AUTH_MODE=token is flagged.
    cfg[key] = [c.replace(old, new) for c in cfg[key]]
    assert token_problems(cfg) != []


def test_token_check_flags_a_token_that_is_not_copied_to_the_nodes(cfg):
    # Without the token file mount the workers could not join a token-auth head.
    del cfg["file_mounts"]["/home/ubuntu/.ray/auth_token"]
    assert token_problems(cfg) != []


def test_flag_check_flags_a_misspelt_ray_start_flag(cfg):
    # A flag the installed `ray start` does not have is flagged.
    cfg["head_start_ray_commands"] = [
        c.replace("--dashboard-host", "--dashbord-host") for c in cfg["head_start_ray_commands"]
    ]
    assert any("dashbord-host" in p for p in ray_start_flag_problems(cfg))


def test_comment_check_flags_an_uncommented_key():
    # Removing the comment above a key is flagged.
    text = CLUSTER_YAML.read_text()
    broken = re.sub(r"\n#[^\n]*\nidle_timeout_minutes:", "\nidle_timeout_minutes:", text)
    lines = broken.splitlines()
    number = next(i for i, ln in enumerate(lines, 1) if ln.startswith("idle_timeout_minutes"))
    assert uncommented_keys(broken) == [f"line {number}: idle_timeout_minutes"]
