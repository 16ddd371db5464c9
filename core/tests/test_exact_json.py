"""`penguiflow.state.exact_json`: state loads back equal, or is refused naming where."""

from __future__ import annotations

import decimal
import enum
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from penguiflow.errors import InvalidTypeError
from penguiflow.state.exact_json import dumps_exact, first_unstorable

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)


def _shape(value: Any) -> Any:
    """`value` with every leaf replaced by its type, to compare types as well as values."""
    if isinstance(value, dict):
        return {key: _shape(child) for key, child in value.items()}
    if isinstance(value, list):
        return [_shape(child) for child in value]
    return type(value)


@given(JSON_VALUES)
def test_what_json_holds_loads_back_equal_and_of_the_same_types(value: Any) -> None:
    loaded = json.loads(dumps_exact(value, what="state", store="a store"))
    assert loaded == value and _shape(loaded) == _shape(value)


class Colour(str, enum.Enum):
    RED = "red"


@pytest.mark.parametrize(
    ("value", "where", "why"),
    [
        (b"x", "state", "of type 'bytes'"),
        ({"a": [1, {"b": {1, 2}}]}, "state['a'][1]['b']", "of type 'set'"),
        ({"a": (1,)}, "state['a']", "use a list"),
        ({"a": {None: 1}}, "state['a']", "NoneType key None"),
        ([float("inf")], "state[0]", "not a finite number"),
        ({"d": decimal.Decimal("1.5")}, "state['d']", "str(value)"),
        ({"o": object()}, "state['o']", "model_dump"),
    ],
)
def test_what_would_change_is_refused_with_its_path(value: Any, where: str, why: str) -> None:
    problem = first_unstorable(value, "state")
    assert problem is not None and problem[0] == where and why in problem[1]
    with pytest.raises(InvalidTypeError) as caught:
        dumps_exact(value, what="state", store="the test store")
    assert str(caught.value).startswith(f"the test store cannot save {where}: it ")


def test_subclasses_of_json_types_are_stored_as_their_value() -> None:
    assert json.loads(dumps_exact({"c": Colour.RED}, what="s", store="x")) == {"c": "red"}


def test_cycles_and_deep_nesting_are_refused_not_crashed_on() -> None:
    loop: dict[str, Any] = {}
    loop["self"] = loop
    with pytest.raises(InvalidTypeError, match=r"cannot save s\['self'\]: it contains itself"):
        dumps_exact(loop, what="s", store="x")
    deep: list[Any] = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(InvalidTypeError, match="nested too deeply"):
        dumps_exact(deep, what="s", store="x")
    shared = [1, 2]
    assert json.loads(dumps_exact({"a": shared, "b": shared}, what="s", store="x")) == {
        "a": [1, 2],
        "b": [1, 2],
    }
