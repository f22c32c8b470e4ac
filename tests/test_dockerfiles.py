"""Static checks of every service's Dockerfile: nothing is built, the files are only parsed.

Each folder under services/ must ship a multi-stage Dockerfile whose images are pinned to exact
versions and whose final stage runs the service as a non-root user, without uv or build tools.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVICES_DIR = ROOT / "services"
SERVICES = sorted(
    path.name
    for path in SERVICES_DIR.iterdir()
    if path.is_dir() and not path.name.startswith((".", "_"))
)

# A tag pinned to an exact release: major.minor.patch, optionally followed by a variant
# (3.11.14-slim-bookworm, 0.13.9). Or, stronger still, a content digest.
EXACT_TAG = re.compile(r"^v?\d+\.\d+\.\d+(?:[-+_.][\w.+-]*)?$")
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")

INSTALL_COMMAND = re.compile(r"\b(?:apt-get|apt|aptitude|pip3?|uv\s+pip)\s+(?:-\S+\s+)*install\b")
BUILD_TOOLS = frozenset(
    {"gcc", "g++", "cc", "clang", "make", "build-essential", "python3-dev", "libc6-dev"}
)
UV_TOKEN = re.compile(r"(?<![\w.-])uvx?(?![\w.-])")


@dataclass
class Instruction:
    keyword: str
    args: str


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [i.args for i in self.instructions if i.keyword == keyword]


def parse_instructions(text: str) -> list[Instruction]:
    """Instructions in order, line continuations joined and comment lines dropped."""
    instructions: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip()))
        pending = ""
    if pending:
        keyword, _, args = pending.strip().partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip()))
    return instructions


def parse_stages(text: str) -> list[Stage]:
    """The build stages, each with the instructions that follow its FROM."""
    stages: list[Stage] = []
    for instruction in parse_instructions(text):
        if instruction.keyword == "FROM":
            words = [w for w in instruction.args.split() if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].lower() == "as" else None
            stages.append(Stage(image=words[0], name=name))
        elif stages:
            stages[-1].instructions.append(instruction)
    return stages


def is_pinned(image: str) -> bool:
    """True for a reference by digest, or by a tag naming an exact version (never latest)."""
    if DIGEST.search(image):
        return True
    _, sep, tag = image.rsplit("/", 1)[-1].partition(":")
    return bool(sep) and "latest" not in tag and EXACT_TAG.match(tag) is not None


def copied_from(instruction: Instruction) -> str | None:
    """The --from= source of a COPY, if it has one."""
    match = re.search(r"--from=(\S+)", instruction.args)
    return match.group(1) if match else None


def stages_of(service: str) -> list[Stage]:
    dockerfile = SERVICES_DIR / service / "Dockerfile"
    if not dockerfile.is_file():
        pytest.fail(f"services/{service} has no Dockerfile")
    stages = parse_stages(dockerfile.read_text(encoding="utf-8"))
    if not stages:
        pytest.fail(f"services/{service}/Dockerfile has no FROM instruction")
    return stages


def test_there_are_service_folders_to_check() -> None:
    assert SERVICES, "no folder found under services/"


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_folder_has_a_dockerfile(service: str) -> None:
    assert (SERVICES_DIR / service / "Dockerfile").is_file()


@pytest.mark.parametrize("service", SERVICES)
def test_image_is_built_in_at_least_two_stages(service: str) -> None:
    assert len(stages_of(service)) >= 2


@pytest.mark.parametrize("service", SERVICES)
def test_every_base_image_is_pinned_to_an_exact_version(service: str) -> None:
    stages = stages_of(service)
    for index, stage in enumerate(stages):
        earlier = {s.name for s in stages[:index] if s.name}
        if stage.image in earlier:
            continue
        assert is_pinned(stage.image), f"FROM {stage.image} is not pinned to an exact version"


@pytest.mark.parametrize("service", SERVICES)
def test_images_copied_from_are_pinned_to_an_exact_version(service: str) -> None:
    stages = stages_of(service)
    names = {s.name for s in stages if s.name}
    for stage in stages:
        for instruction in stage.instructions:
            source = copied_from(instruction) if instruction.keyword == "COPY" else None
            if source is None or source in names or source.isdigit():
                continue
            assert is_pinned(source), f"COPY --from={source} is not pinned to an exact version"


@pytest.mark.parametrize("service", SERVICES)
def test_final_stage_runs_as_a_non_root_user(service: str) -> None:
    users = stages_of(service)[-1].all("USER")
    assert users, "the final stage has no USER instruction"
    uid = users[-1].partition(":")[0]
    assert uid.isdigit(), f"USER {users[-1]} does not give a numeric UID"
    assert int(uid) != 0, "the final stage runs as root"


@pytest.mark.parametrize("service", SERVICES)
def test_final_stage_installs_no_build_tools(service: str) -> None:
    for command in stages_of(service)[-1].all("RUN"):
        if not INSTALL_COMMAND.search(command):
            continue
        words = {word.split("=")[0] for word in re.split(r"[\s;&|]+", command)}
        assert not words & BUILD_TOOLS, f"the final stage installs build tools: {command}"


@pytest.mark.parametrize("service", SERVICES)
def test_final_stage_carries_no_uv(service: str) -> None:
    for instruction in stages_of(service)[-1].instructions:
        assert not UV_TOKEN.search(instruction.args), (
            f"the final stage uses uv: {instruction.keyword} {instruction.args}"
        )


@pytest.mark.parametrize("service", SERVICES)
def test_entrypoint_starts_the_service_named_after_its_folder(service: str) -> None:
    entrypoints = stages_of(service)[-1].all("ENTRYPOINT")
    assert entrypoints, "the final stage has no ENTRYPOINT"
    entrypoint = entrypoints[-1]
    command = json.loads(entrypoint) if entrypoint.startswith("[") else entrypoint.split()
    assert command[0] == f"paraphe-{service}"


@pytest.mark.parametrize(
    "image",
    [
        "python:3.11.14-slim-bookworm",
        "ghcr.io/astral-sh/uv:0.13.9",
        "registry.local:5000/python:3.11.14",
        "python@sha256:" + "0" * 64,
    ],
)
def test_pinning_rule_accepts_exact_versions_and_digests(image: str) -> None:
    assert is_pinned(image)


@pytest.mark.parametrize(
    "image",
    [
        "python",
        "python:latest",
        "python:3.11",
        "python:3.11-slim-bookworm",
        "python:3-slim",
        "ghcr.io/astral-sh/uv:0.13",
        "registry.local:5000/python",
    ],
)
def test_pinning_rule_rejects_floating_references(image: str) -> None:
    assert not is_pinned(image)


def test_parser_joins_continuations_and_splits_stages() -> None:
    stages = parse_stages(
        "# comment\n"
        "FROM python:3.11.14-slim AS builder\n"
        "RUN echo one \\\n"
        "    # a comment inside a continuation\n"
        "    && echo two\n"
        "FROM --platform=linux/amd64 python:3.11.14-slim\n"
        "USER 10001:10001\n"
    )
    assert [(s.image, s.name) for s in stages] == [
        ("python:3.11.14-slim", "builder"),
        ("python:3.11.14-slim", None),
    ]
    assert stages[0].all("RUN") == ["echo one && echo two"]
    assert stages[1].all("USER") == ["10001:10001"]
