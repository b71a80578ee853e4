from epee_demo.data import Split


def test_first_caps_a_split_and_none_keeps_it_whole():
    split = Split(["a", "b", "c"], [0, 1, 0])
    assert split.first(2) == Split(["a", "b"], [0, 1])
    assert split.first(None) is split
    assert len(split.first(10)) == 3
