"""The Kubernetes manifests of deploy/k8s as kubectl renders them, for the tests that read them.

A test asking for them is skipped where kubectl is not installed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any, Final

import pytest
import yaml  # type: ignore[import-untyped]

REPOSITORY: Final = Path(__file__).resolve().parents[4]
K8S: Final = REPOSITORY / "deploy" / "k8s"

Object = dict[str, Any]


@cache
def render(overlay: str) -> str:
    """``kubectl kustomize`` of deploy/k8s/overlays/<overlay>: the manifests as one YAML text."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the Kubernetes manifests cannot be rendered")
    done = subprocess.run(
        [kubectl, "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@cache
def _parsed(overlay: str) -> str:
    return json.dumps([document for document in yaml.safe_load_all(render(overlay)) if document])


def objects(overlay: str) -> list[Object]:
    """The rendered objects, a fresh copy for each caller."""
    parsed: list[Object] = json.loads(_parsed(overlay))
    return parsed
