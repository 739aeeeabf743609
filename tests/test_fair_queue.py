from bnviz.runs.fair_queue import FairQueue


def queue(*items):
    q = FairQueue(key=lambda item: item[0])  # items are "<session><n>" strings
    for item in items:
        q.push(item)
    return q


def test_a_grid_cannot_starve_a_newcomer():
    q = queue("a1", "a2", "a3", "a4", "b1", "c1")
    assert list(q) == ["a1", "b1", "c1", "a2", "a3", "a4"]  # the order positions are shown in
    assert [q.pop() for _ in range(len(q))] == ["a1", "b1", "c1", "a2", "a3", "a4"]


def test_order_after_pops_pushes_and_removes_matches_iteration():
    q = queue("a1", "a2", "b1")
    assert q.pop() == "a1"
    q.push("c1")
    q.push("b2")
    assert list(q) == ["b1", "a2", "c1", "b2"]
    q.remove("a2")
    assert "a2" not in q and q.count("a") == 0 and len(q) == 3
    assert [q.pop() for _ in range(3)] == ["b1", "c1", "b2"]
    assert len(q) == 0 and list(q) == []
