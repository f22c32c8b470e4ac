"""The docs' kubectl commands, held to what production really runs.

An operator copies a runbook's command at night, under an alert: it must reach the objects it
names. Every kubectl command in docs/ names the ``paraphe`` namespace, and every label selector
(``-l``) selects pods of the prod render (``kubectl kustomize``, as tests/test_deploy_k8s.py
renders it), for each service a ``<service>`` placeholder may stand for.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from paraphe_devstack.manifests import objects
from paraphe_devstack.stack import SERVICES

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").glob("*.md"))
NAMESPACE = "paraphe"
# What a placeholder of a command stands for: each service prod deploys.
PLACEHOLDERS = {
    "service": [spec.name for spec in SERVICES if spec.name != "franceconnect-sandbox"],
}
# The kinds a `kubectl get` beside pods may name, as the rendered objects spell them.
KINDS = {
    "deploy": "Deployment", "deployment": "Deployment", "deployments": "Deployment",
    "sts": "StatefulSet", "statefulset": "StatefulSet", "statefulsets": "StatefulSet",
    "job": "Job", "jobs": "Job",
    "svc": "Service", "service": "Service", "services": "Service",
}  # fmt: skip
POD_RESOURCES = {"po", "pod", "pods"}
_SEPARATORS = {"|", "||", "&&", ";", "&", "(", ")"}

Labels = Mapping[str, str]


@dataclass(frozen=True)
class Command:
    """One kubectl command of a document, as a shell would split it."""

    source: str  # document:line
    words: tuple[str, ...]

    def option(self, short: str, long: str) -> str | None:
        # kubectl's own options: what follows `--` is the command run in a container
        words = self.words[: self.words.index("--")] if "--" in self.words else self.words
        for n, word in enumerate(words):
            if word in (short, long) and n + 1 < len(words):
                return words[n + 1]
            if word.startswith(long + "="):
                return word.removeprefix(long + "=")
            if word.startswith(short) and len(word) > len(short) and not word.startswith("--"):
                return word.removeprefix(short)
        return None

    @property
    def namespace(self) -> str | None:
        return self.option("-n", "--namespace")

    @property
    def selector(self) -> str | None:
        return self.option("-l", "--selector")

    @property
    def verb(self) -> str:
        """The subcommand, past the global options (``kubectl -n paraphe get ...``)."""
        words = iter(self.words[1:])
        for word in words:
            if word in ("-n", "--namespace", "--context"):
                next(words, None)
            elif not word.startswith("-"):
                return word
        return ""

    def resources(self) -> list[str]:
        """What a `get` or `describe` names: ``deploy,pods`` → ``["deploy", "pods"]``."""
        words = list(self.words)
        verb_at = words.index(self.verb)
        following = [w for w in words[verb_at + 1 :] if not w.startswith("-")]
        # the value of an option given as two words is not a resource
        values = {self.namespace, self.selector}
        following = [w for w in following if w not in values]
        return following[0].split(",") if following else []


def _commands_in(text: str, source: str) -> Iterator[Command]:
    # Not < and >: a placeholder (`<service>`) is part of its word.
    lexer = shlex.shlex(text, posix=True, punctuation_chars="();|&")
    lexer.whitespace_split = True
    try:
        words = list(lexer)
    except ValueError:  # an unfinished quote: a fragment, not a command
        return
    segment: list[str] = []
    for word in [*words, ";"]:
        if word in _SEPARATORS:
            if segment and segment[0] == "kubectl":
                yield Command(source, tuple(segment))
            segment = []
        else:
            segment.append(word)


def kubectl_commands(text: str, name: str) -> list[Command]:
    """Every kubectl command of a Markdown text: in code blocks and in inline code."""
    found: list[Command] = []
    prose: list[str] = []
    in_block = False
    pending, starts = "", 0
    for number, line in enumerate(text.splitlines(), start=1):
        if line.lstrip().startswith("```"):
            in_block = not in_block
            prose.append("")
            continue
        if not in_block:
            prose.append(line)
            continue
        prose.append("")
        starts = starts or number
        pending += line
        if pending.endswith("\\"):  # continued on the next line
            pending = pending[:-1] + " "
            continue
        found += _commands_in(pending, f"{name}:{starts}")
        pending, starts = "", 0
    # Inline code may run over a line break; its line is where it starts.
    joined = "\n".join(prose)
    for span in re.finditer(r"`([^`]+)`", joined):
        number = joined.count("\n", 0, span.start()) + 1
        found += _commands_in(span.group(1).replace("\n", " "), f"{name}:{number}")
    return found


def documented_commands() -> list[Command]:
    return [
        command
        for path in DOCS
        for command in kubectl_commands(path.read_text(), str(path.relative_to(ROOT)))
    ]


def expand(text: str) -> list[str]:
    """The text for each value of its placeholder (``<service>``), or itself."""
    names = set(re.findall(r"<([\w-]+)>", text))
    assert names <= set(PLACEHOLDERS), f"unknown placeholders {names - set(PLACEHOLDERS)}"
    if not names:
        return [text]
    (name,) = names
    return [text.replace(f"<{name}>", value) for value in PLACEHOLDERS[name]]


def selects(selector: str, labels: Labels) -> bool:
    """Whether an equality-based selector (``a=b,c!=d,e,!f``) selects these labels."""
    for requirement in selector.split(","):
        requirement = requirement.strip()
        match = re.fullmatch(r"([\w./-]+)\s*(==|=|!=)\s*([\w.-]*)", requirement)
        if match:
            key, operator, value = match.groups()
            if (labels.get(key) == value) != (operator != "!="):
                return False
        elif re.fullmatch(r"[\w./-]+", requirement):
            if requirement not in labels:
                return False
        elif re.fullmatch(r"![\w./-]+", requirement):
            if requirement[1:] in labels:
                return False
        else:
            raise AssertionError(f"a selector this test cannot read: {selector!r}")
    return True


def pod_templates() -> list[Labels]:
    return [
        o["spec"]["template"]["metadata"].get("labels", {})
        for o in objects("prod")
        if "template" in o.get("spec", {})
    ]


def labels_of(kind: str) -> list[Labels]:
    return [o["metadata"].get("labels", {}) for o in objects("prod") if o["kind"] == kind]


# ---- the tests --------------------------------------------------------------------------------


def test_commands_are_read_from_markdown_as_a_shell_reads_them() -> None:
    text = (
        "First: `kubectl -n paraphe get deploy,pods -l app.kubernetes.io/name=<service>`, then\n"
        "`kubectl logs -l\napp=counter` and:\n"
        "```sh\n"
        "make -s secret | kubectl --namespace=paraphe apply -f - && kubectl get pods \\\n"
        "    -lapp=x\n"
        "echo kubectl\n"
        "```\n"
    )
    commands = kubectl_commands(text, "doc.md")
    assert [(c.source, c.namespace, c.selector) for c in commands] == [
        ("doc.md:5", "paraphe", None),
        ("doc.md:5", None, "app=x"),
        ("doc.md:1", "paraphe", "app.kubernetes.io/name=<service>"),
        ("doc.md:2", None, "app=counter"),
    ]
    assert commands[2].verb == "get"
    assert commands[2].resources() == ["deploy", "pods"]
    assert commands[3].verb == "logs"


def test_selectors_select_as_kubernetes_does() -> None:
    labels = {"app.kubernetes.io/name": "counter", "app.kubernetes.io/component": "service"}
    assert selects("app.kubernetes.io/name=counter", labels)
    assert selects("app.kubernetes.io/name==counter,app.kubernetes.io/component", labels)
    assert not selects("app=counter", labels)  # the label no pod carries
    assert not selects(
        "app.kubernetes.io/name=counter,app.kubernetes.io/component!=service", labels
    )
    assert not selects("!app.kubernetes.io/name", labels)


def test_the_runbooks_select_pods_by_label() -> None:
    """The extraction finds the runbooks' selectors: the checks below do not pass empty."""
    operations = [c for c in documented_commands() if c.source.startswith("docs/operations.md")]
    assert sum(1 for c in operations if c.selector) >= 3
    assert {c.verb for c in operations if c.selector} >= {"logs", "get"}


def test_every_kubectl_command_in_the_docs_names_the_paraphe_namespace() -> None:
    for command in documented_commands():
        if command.verb == "kustomize" or (command.verb == "apply" and "-k" in command.words):
            continue  # renders or applies the kustomization, which sets every namespace
        assert command.namespace == NAMESPACE, (
            f"{command.source}: `{shlex.join(command.words)}` does not name -n {NAMESPACE}"
        )


def test_every_label_selector_in_the_docs_selects_pods_prod_runs() -> None:
    templates = pod_templates()
    assert templates
    for command in documented_commands():
        if command.selector is None:
            continue
        shown = f"{command.source}: `{shlex.join(command.words)}`"
        resources = command.resources() if command.verb in ("get", "describe") else ["pods"]
        for selector in expand(command.selector):
            assert any(selects(selector, labels) for labels in templates), (
                f"{shown}: {selector} selects no pod of the prod render"
            )
            for resource in resources:
                if resource in POD_RESOURCES:
                    continue
                assert resource in KINDS, f"{shown}: a resource this test cannot read"
                assert any(selects(selector, labels) for labels in labels_of(KINDS[resource])), (
                    f"{shown}: {selector} selects no {KINDS[resource]} of the prod render"
                )
