"""The reorder buffer: frame order out, whatever the order in; each frame once; delays measured."""

from __future__ import annotations

import random

import pytest

from device_agent.coexec.reorder import ReorderBuffer


def test_in_order_frames_leave_at_once_with_no_delay():
    buf = ReorderBuffer()
    assert buf.push(0, "a", 10) == [(0, "a", 0)]
    assert buf.push(1, "b", 20) == [(1, "b", 0)]
    assert len(buf) == 0


def test_a_late_frame_releases_the_ones_waiting_behind_it():
    buf = ReorderBuffer()
    assert buf.push(1, "b", 100) == []
    assert buf.push(2, "c", 150) == []
    assert buf.pending() == [1, 2]
    assert buf.push(0, "a", 400) == [(0, "a", 0), (1, "b", 300), (2, "c", 250)]
    assert buf.max_waiting == 3 and buf.next_index == 3


def test_random_arrival_order_comes_out_sorted_and_complete():
    rng = random.Random(7)
    order = list(range(500))
    rng.shuffle(order)
    buf = ReorderBuffer()
    out = []
    for t, i in enumerate(order):
        out += buf.push(i, i * 10, t)
    assert [o[0] for o in out] == list(range(500))
    assert all(o[1] == o[0] * 10 for o in out)
    assert all(o[2] >= 0 for o in out)
    assert len(buf) == 0


@pytest.mark.parametrize("seq", [[0, 0], [1, 1], [0, 1, 0]])
def test_a_frame_delivered_twice_is_an_error(seq):
    buf = ReorderBuffer()
    with pytest.raises(ValueError, match="delivered twice"):
        for i in seq:
            buf.push(i, None, 0)
