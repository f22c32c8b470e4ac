"""Write prometheus-rule.yaml from deploy/monitoring/rules/*.yml: the one source of the rules.

    .venv/bin/python deploy/k8s/components/monitoring/prometheus_rule.py

tests/test_deploy_k8s.py fails when the two differ.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
RULES = HERE.parents[2] / "monitoring" / "rules"
OUTPUT = HERE / "prometheus-rule.yaml"

HEADER = """\
# Generated from deploy/monitoring/rules/*.yml by prometheus_rule.py: edit the rules there,
# then run `.venv/bin/python deploy/k8s/components/monitoring/prometheus_rule.py`.
"""


def prometheus_rule() -> dict[str, Any]:
    groups: list[Any] = []
    for path in sorted(RULES.glob("*.yml")):
        groups.extend(yaml.safe_load(path.read_text(encoding="utf-8"))["groups"])
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "paraphe"},
        "spec": {"groups": groups},
    }


class _Dumper(yaml.SafeDumper):
    """Multi-line expressions and descriptions as literal blocks, as in the rule files; lists
    indented under their key, as yamllint wants them."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _string)


def render() -> str:
    body = yaml.dump(
        prometheus_rule(), Dumper=_Dumper, sort_keys=False, width=80, allow_unicode=True
    )
    return HEADER + body


if __name__ == "__main__":
    OUTPUT.write_text(render(), encoding="utf-8")
