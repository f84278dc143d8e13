"""Mermaid output parsed back: its nodes and edges must say what the document says."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field

import networkx as nx
import pytest
from _examples import example_documents, example_names
from diagram_docs import all_to_all, checkout, document, etl, fan_out, job, op, ref

from flowkit.conditions import to_text
from flowkit.diagram import to_mermaid
from flowkit.document import WorkflowDocument

_NODE = re.compile(
    r'^(?P<id>\w+)(?P<open>\(\[|\(\(|\(|\{|\[)"(?P<label>[^"]*)"(?P<close>\]\)|\)\)|\)|\}|\])$'
)
_EDGE = re.compile(r'^(?P<src>\w+) (?P<arrow>-->|-\.->|---)(?:\|"(?P<label>[^"]*)"\|)? (?P<dst>\w+)$')
_IGNORED = ("flowchart ", "%%", "classDef ", "class ", "linkStyle ")
_SHAPES = {"([": "terminal", "((": "point", "(": "job", "{": "decision", "[": "box"}


@dataclass
class Parsed:
    nodes: dict[str, tuple[str, list[str]]] = field(default_factory=dict)  # id -> (shape, label lines)
    edges: list[tuple[str, str, str, str]] = field(default_factory=list)  # (src, arrow, label, dst)
    subgraphs: dict[str, list[str]] = field(default_factory=dict)  # id -> the nodes defined inside


_SUBGRAPH = re.compile(r'^subgraph (?P<id>\w+)\["(?P<label>[^"]*)"\]$')


def decode(text: str) -> str:
    """Mermaid entity codes (``#quot;``, ``#35;`` ...) back to characters, in one pass."""
    return re.sub(
        r"#(\d+|[a-z]+);",
        lambda m: chr(int(m[1])) if m[1].isdigit() else html.unescape(f"&{m[1]};"),
        text,
    )


def parse(text: str) -> Parsed:
    """A strict parser for the subset flowkit writes: any other line fails the test."""
    parsed = Parsed()
    lines = text.splitlines()
    assert lines[0] == "flowchart LR"
    open_subgraphs: list[str] = []
    for raw in lines:
        line = raw.strip()
        if m := _SUBGRAPH.match(line):
            open_subgraphs.append(m["id"])
            parsed.subgraphs[m["id"]] = []
            continue
        if line == "end":
            open_subgraphs.pop()
            continue
        if not line or line.startswith(_IGNORED):
            continue
        if m := _NODE.match(line):
            parts = [decode(re.sub(r"</?b>", "", p)) for p in m["label"].split("<br/>")]
            assert m["id"] not in parsed.nodes, f"node {m['id']} defined twice"
            parsed.nodes[m["id"]] = (_SHAPES[m["open"]], parts)
            for subgraph in open_subgraphs:
                parsed.subgraphs[subgraph].append(m["id"])
        elif m := _EDGE.match(line):
            parsed.edges.append(
                (m["src"], m["arrow"], decode(m["label"] or "").replace("<br/>", " "), m["dst"])
            )
        else:
            pytest.fail(f"unexpected Mermaid line: {raw!r}")
    assert not open_subgraphs, "unbalanced subgraph/end"
    return parsed


def job_name(parsed: Parsed, node: str, doc: WorkflowDocument) -> str | None:
    """The job a node draws: its label's first lines, re-joined, are the (wrapped) job name."""
    shape, lines = parsed.nodes[node]
    if shape != "job":
        return None
    names = {spec.name for spec in doc.jobs}
    for end in range(1, len(lines) + 1):
        if "".join(lines[:end]) in names:
            return "".join(lines[:end])
    pytest.fail(f"job node {node} has no job name in its label {lines!r}")


def check_against_document(text: str, doc: WorkflowDocument) -> None:
    parsed = parse(text)
    jobs = {node: job_name(parsed, node, doc) for node in parsed.nodes}
    jobs = {node: name for node, name in jobs.items() if name is not None}
    start = [n for n, (shape, lines) in parsed.nodes.items() if shape == "terminal" and lines == ["start"]]

    # every job drawn once, every edge between defined nodes (or a subgraph: all of its nodes)
    assert sorted(jobs.values()) == sorted(spec.name for spec in doc.jobs)
    for src, _, _, dst in parsed.edges:
        assert src in parsed.nodes or src in parsed.subgraphs
        assert dst in parsed.nodes or dst in parsed.subgraphs

    # job-level predecessors: walk back through decisions, forks and joins
    into: dict[str, set[str]] = {}
    for src, _, _, dst in parsed.edges:
        for target in parsed.subgraphs.get(dst, [dst]):
            into.setdefault(target, set()).update(parsed.subgraphs.get(src, [src]))

    def job_preds(node: str, seen: set[str]) -> set[str]:
        found: set[str] = set()
        for src in into.get(node, ()):
            if src in jobs:
                found.add(jobs[src])
            elif src in start:
                found.add("<start>")
            elif src not in seen:
                seen.add(src)
                found |= job_preds(src, seen)
        return found

    drawn = nx.DiGraph()
    drawn.add_nodes_from(spec.name for spec in doc.jobs)
    for node, name in jobs.items():
        for pred in job_preds(node, set()) - {"<start>"}:
            drawn.add_edge(pred, name)
    declared = nx.DiGraph()
    declared.add_nodes_from(spec.name for spec in doc.jobs)
    declared.add_edges_from((need, spec.name) for spec in doc.jobs for need in spec.needs)

    # the picture orders jobs exactly as the needs do, and shows every non-implied need directly
    assert nx.transitive_closure_dag(drawn).edges == nx.transitive_closure_dag(declared).edges
    assert set(nx.transitive_reduction(declared).edges) <= set(drawn.edges)
    for node, name in jobs.items():
        if not doc.job(name).needs:
            assert job_preds(node, set()) == {"<start>"}, f"{name} should follow the start"

    # each when: one decision, its condition in readable text on a then edge, an otherwise edge
    decisions = [n for n, (shape, _) in parsed.nodes.items() if shape == "decision"]
    assert len(decisions) == len(doc.branches)
    labels = {(arrow, label) for _, arrow, label, _ in parsed.edges if label}
    for branch in doc.branches:
        text = to_text(branch.condition)
        assert ("-->", text) in labels or ("---", text) in labels  # '---' into a fork point
        assert ("-.->", "otherwise") in labels


@pytest.mark.parametrize("name", example_names())
def test_example_mermaid_matches_its_document(name: str) -> None:
    doc = example_documents()[name]

    check_against_document(to_mermaid(doc), doc)


@pytest.mark.parametrize("build", [etl, checkout, lambda: fan_out(60), lambda: all_to_all(50)])
def test_hand_built_mermaid_matches_its_document(build) -> None:  # type: ignore[no-untyped-def]
    doc = build()

    check_against_document(to_mermaid(doc), doc)


def test_conditions_survive_quotes_and_angle_brackets() -> None:
    cond = op(
        "and",
        op("eq", ref("input", "mode"), {"const": 'full "#1" & <all> | x'}),
        op("lt", ref("jobs", "a", "output", "n"), {"const": 10}),
    )
    doc = document("quoting", [job("a", "p"), job("b", "p", ["a"], condition=cond)])

    parsed = parse(to_mermaid(doc))

    then = [label for _, arrow, label, _ in parsed.edges if arrow == "-->" and label]
    assert then == ['input.mode == "full \\"#1\\" & <all> | x" and a.output.n < 10']


def test_mermaid_reserved_words_are_not_ids() -> None:
    doc = document("words", [job("end", "p"), job("style", "p", ["end"]), job("a-b", "p"), job("a_b", "p")])

    parsed = parse(to_mermaid(doc))

    assert {"end", "style"}.isdisjoint(parsed.nodes)
    assert len({n for n, (shape, _) in parsed.nodes.items() if shape == "job"}) == 4


def test_run_states_become_classes_and_a_legend() -> None:
    text = to_mermaid(etl(), {"extract": "succeeded", "transform": "failed", "load": "running"})

    assert "    class j_extract,legend_succeeded succeeded" in text
    assert "    class j_transform,legend_failed failed" in text
    assert "    class j_notify_empty,j_report,legend_pending pending" in text
    assert 'subgraph legend["job state"]' in text
    parse(text)  # still well-formed


def test_a_wide_fan_out_is_one_subgraph_linked_as_a_whole() -> None:
    doc = fan_out(60)

    parsed = parse(to_mermaid(doc))

    assert len(parsed.subgraphs["parallel_1"]) == 60
    assert [(src, dst) for src, _, _, dst in parsed.edges if "parallel_1" in (src, dst)] == [
        ("j_prepare", "parallel_1"),
        ("parallel_1", "j_merge_all_partitions_into_the_warehouse"),
    ]
