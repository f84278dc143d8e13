"""The DSL at scale: ``>>`` chains link instead of copying, and the body signature check's fast path."""

from __future__ import annotations

import functools
import inspect
from typing import Any

import pytest

from flowkit import compile, job, parallel, sequence, workflow
from flowkit.dsl import Job, Serial
from flowkit.dsl.job import _accepts_two_positionals


def _body(event: Any, context: Any = None) -> None:
    return None


def _jobs(n: int) -> list[Job]:
    return [job(name=f"j{i}")(_body) for i in range(n)]


def test_a_long_left_folded_chain_is_one_flat_sequence_and_its_prefixes_are_unchanged() -> None:
    # Given 20,000 jobs chained one >> at a time (deeper than the recursion limit)
    jobs = _jobs(20_000)
    prefixes: list[Serial] = []
    root: Any = jobs[0]
    for item in jobs[1:]:
        root = root >> item
        if len(prefixes) < 3:
            prefixes.append(root)
    # Then the chain reads as one flat sequence, and the earlier values still hold only their jobs
    assert root.items == tuple(jobs)
    assert [p.items for p in prefixes] == [tuple(jobs[:2]), tuple(jobs[:3]), tuple(jobs[:4])]


def test_a_right_folded_chain_and_mixed_nesting_flatten_in_order() -> None:
    jobs = _jobs(5_000)
    right = functools.reduce(lambda acc, item: item >> acc, reversed(jobs[:-1]), jobs[-1])
    assert isinstance(right, Serial) and right.items == tuple(jobs)
    a, b, c, d, e = _jobs(5)
    p = parallel(c, d)
    mixed = sequence(a >> b, sequence(), p) >> sequence(e)
    assert mixed.items == (a, b, p, e)
    assert (a >> b).items == (a, b)  # a fresh operand is unaffected


def test_a_chain_built_with_rshift_compiles_like_one_built_with_sequence() -> None:
    jobs = _jobs(300)
    chained = functools.reduce(lambda acc, item: acc >> item, jobs[1:], jobs[0])
    by_rshift = compile(workflow(name="w")(lambda: chained))
    by_sequence = compile(workflow(name="w")(lambda: sequence(*jobs)))
    assert by_rshift == by_sequence


def _positional2(a, b):  # type: ignore[no-untyped-def]
    return None


def _one(a):  # type: ignore[no-untyped-def]
    return None


def _three(a, b, c):  # type: ignore[no-untyped-def]
    return None


def _three_default(a, b, c=1):  # type: ignore[no-untyped-def]
    return None


def _varargs(*args):  # type: ignore[no-untyped-def]
    return None


def _one_varargs(a, *args):  # type: ignore[no-untyped-def]
    return None


def _kwonly_required(a, b, *, c):  # type: ignore[no-untyped-def]
    return None


def _kwonly_default(a, b=None, *, c=2, **kw):  # type: ignore[no-untyped-def]
    return None


def _posonly(a, b=None, /):  # type: ignore[no-untyped-def]
    return None


def _posonly_three(a, b, c, /):  # type: ignore[no-untyped-def]
    return None


def _nothing():  # type: ignore[no-untyped-def]
    return None


def _kwargs_only(**kw):  # type: ignore[no-untyped-def]
    return None


_SIGNATURES = [
    _body,
    _positional2,
    _one,
    _three,
    _three_default,
    _varargs,
    _one_varargs,
    _kwonly_required,
    _kwonly_default,
    _posonly,
    _posonly_three,
    _nothing,
    _kwargs_only,
    lambda event, context=None: None,
    lambda event: None,
]


def _inspect_accepts(fn: Any) -> bool:
    try:
        inspect.signature(fn).bind(None, None)
    except TypeError:
        return False
    return True


@pytest.mark.parametrize("fn", _SIGNATURES, ids=lambda fn: fn.__name__)
def test_the_fast_signature_check_agrees_with_inspect(fn: Any) -> None:
    # The fast path answers True only where inspect agrees; and for plain functions it always answers.
    assert _accepts_two_positionals(fn) == _inspect_accepts(fn)
    if _inspect_accepts(fn):
        job(name="ok")(fn)
    else:
        with pytest.raises(TypeError, match=r"the body must accept \(event, context=None\)"):
            job(name="bad")(fn)


def test_wrapped_and_non_function_bodies_take_the_inspect_path() -> None:
    @functools.wraps(_nothing)
    def wrapper(*args: Any) -> None:
        return None

    # inspect follows __wrapped__ to a body that takes no argument: refused, as before the fast path
    assert not _accepts_two_positionals(wrapper)
    with pytest.raises(TypeError, match="the body must accept"):
        job(name="wrapped")(wrapper)

    class Callable2:
        def __call__(self, event: Any, context: Any = None) -> None:
            return None

    assert not _accepts_two_positionals(Callable2())
    assert job(name="obj")(Callable2()).name == "obj"
    assert job(name="part")(functools.partial(_three, 1)).name == "part"
