"""DOT output: a snapshot per example workflow, and the properties a reader relies on."""

from __future__ import annotations

import re
from typing import Any

import pytest
from _examples import example_documents, example_names
from diagram_docs import all_to_all, checkout, etl, fan_out

from flowkit.diagram import to_digraph, to_dot


@pytest.mark.parametrize("name", example_names())
def test_example_dot(name: str, dot_snapshot: Any) -> None:
    assert to_dot(example_documents()[name]) == dot_snapshot


HAND_BUILT = {
    "etl": etl,
    "checkout": checkout,
    "fan_out_60": lambda: fan_out(60),
    "all_to_all_50": lambda: all_to_all(50),
}


@pytest.mark.parametrize("name", sorted(HAND_BUILT))
def test_hand_built_dot(name: str, dot_snapshot: Any) -> None:
    assert to_dot(HAND_BUILT[name]()) == dot_snapshot


def test_run_state_dot(dot_snapshot: Any) -> None:
    run = {"extract": "succeeded", "transform": "failed", "notify_empty": "skipped", "load": "running"}

    assert to_dot(etl(), run) == dot_snapshot


def test_dot_is_deterministic() -> None:
    assert to_dot(fan_out(60)) == to_dot(fan_out(60))


def test_conditional_edges_read_as_text_and_otherwise_is_dashed() -> None:
    text = to_dot(etl())

    then_edge = next(line for line in text.splitlines() if '"@when/w1" -> transform' in line)
    assert "label=<extract.output.rows &gt; 0>" in then_edge  # HTML-escaped '>', not JSON
    assert '"gt"' not in text and '"ref"' not in text
    otherwise = next(line for line in text.splitlines() if '"@when/w1" -> notify_empty' in line)
    assert "style=dashed" in otherwise and "label=<otherwise>" in otherwise


def test_a_wide_fan_out_is_one_grid_in_reading_order() -> None:
    text = to_dot(fan_out(60))

    grid = next(line for line in text.splitlines() if line.strip().startswith('"@parallel/1" ['))
    assert "60 jobs in parallel" in grid
    names = re.findall(r"<B>(.*?)</B>", grid)
    assert [name.replace("<BR/>", "") for name in names] == [
        f"process_customer_partition_{i:02d}_of_the_nightly_batch" for i in range(60)
    ]
    assert names[0] == "process_customer_<BR/>partition_00_of_the_<BR/>nightly_batch"  # wrapped
    assert grid.count("<TR>") == 1 + 10  # caption + 10 rows of 6
    # one edge in and one out of the grid, instead of 120
    assert re.findall(r"^\s*(\S+) -> (\S+)", text, re.MULTILINE) == [
        ('"@start"', "prepare"),
        ("prepare", '"@parallel/1"'),
        ('"@parallel/1"', "merge_all_partitions_into_the_warehouse"),
        ("merge_all_partitions_into_the_warehouse", '"@end"'),
    ]


def test_fewer_parallel_jobs_stay_separate_nodes() -> None:
    assert "@parallel" not in to_dot(fan_out(11))


def test_grid_cells_are_coloured_by_run_state() -> None:
    doc = fan_out(12)
    first = doc.jobs[1].name

    text = to_dot(doc, {first: "failed"})

    grid = next(line for line in text.splitlines() if line.strip().startswith('"@parallel/1" ['))
    assert grid.count('BGCOLOR="#fecaca"') == 1 and grid.count('BGCOLOR="#ffffff"') == 11


def test_run_states_are_coloured_with_a_legend() -> None:
    text = to_dot(etl(), {"extract": "succeeded", "transform": "failed"})

    extract = next(line for line in text.splitlines() if line.strip().startswith("extract ["))
    transform = next(line for line in text.splitlines() if line.strip().startswith("transform ["))
    assert 'fillcolor="#bbf7d0"' in extract and 'fillcolor="#fecaca"' in transform
    for state in ("pending", "running", "succeeded", "failed", "skipped"):
        assert f'<FONT POINT-SIZE="10">{state}</FONT></TD>' in text  # a legend swatch


def test_to_digraph_returns_a_graphviz_digraph() -> None:
    import graphviz

    digraph = to_digraph(etl())

    assert isinstance(digraph, graphviz.Digraph)
    assert digraph.name == "nightly-etl"


def test_output_does_not_depend_on_hash_seeds() -> None:
    import os
    import subprocess
    import sys

    from _examples import ROOT

    code = (
        "import diagram_docs as b\n"
        "from flowkit.diagram import to_dot, to_mermaid\n"
        "for d in (b.etl(), b.checkout(), b.fan_out(30), b.all_to_all(20)):\n"
        "    print(to_dot(d)); print(to_mermaid(d))\n"
    )
    outputs = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT / "tests" / "diagram")}
        result = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=True
        )
        outputs.add(result.stdout)

    assert len(outputs) == 1
