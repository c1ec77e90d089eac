"""Stable delivered names: the registry rules on their own."""

from __future__ import annotations

from matte_assets.stages.layer_names import assign_names


def test_first_delivery_numbers_by_appearance():
    names, reg = assign_names({}, [1, 2, 3], ["moving", "moving", "person"], [4, 0, 2])
    assert names == ["moving2", "moving1", "person1"]
    assert reg == {2: "moving1", 1: "moving2", 3: "person1"}


def test_drop_leaves_a_gap_merge_keeps_survivor_new_layers_get_new_numbers():
    reg = {1: "moving1", 2: "moving2", 3: "moving3"}
    # moving1 dropped: nobody is renamed
    assert assign_names(reg, [2, 3], ["moving"] * 2, [0, 0])[0] == ["moving2", "moving3"]
    # 3 merged into 2: the survivor keeps its name, moving3 is a gap
    assert assign_names(reg, [2], ["moving"], [0])[0] == ["moving2"]
    # a new layer (artist id 1001) after moving3 was dropped: moving4, never moving1/moving3
    names, after = assign_names({**reg}, [2, 1001], ["moving", "moving"], [0, 3])
    assert names == ["moving2", "moving4"] and after[1001] == "moving4"
    # and the new name sticks later, with the dropped one back
    assert assign_names(after, [1, 2, 3, 1001], ["moving"] * 4, [0] * 4)[0] == ["moving1", "moving2", "moving3", "moving4"]


def test_label_with_odd_characters_and_trailing_digits():
    names, _ = assign_names({7: "car21"}, [7, 8], ["car2", "car2"], [0, 1])
    assert names[0] == "car21" and names[1] not in ("car21",) and names[1].startswith("car")
