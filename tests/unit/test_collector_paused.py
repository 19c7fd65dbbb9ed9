"""The cyclic GC is off while CHT is read and aggregated, and always back on after:
a run that fails, or two runs that overlap, must never leave it off in ``serve``."""

from __future__ import annotations

import gc
import threading

import pytest

from mediator.run.read import collector_paused as _collector_paused


def test_off_inside_and_on_after_even_when_the_read_fails():
    assert gc.isenabled()
    with pytest.raises(RuntimeError), _collector_paused():
        assert not gc.isenabled()
        raise RuntimeError("CHT went away")
    assert gc.isenabled()


def test_overlapping_runs_turn_it_back_on_when_the_last_one_ends():
    first_in, second_done, states = threading.Event(), threading.Event(), []

    def first() -> None:
        with _collector_paused():
            first_in.set()
            second_done.wait(5)
            states.append(("first, after second ended", gc.isenabled()))

    thread = threading.Thread(target=first)
    thread.start()
    first_in.wait(5)
    with _collector_paused():
        states.append(("second", gc.isenabled()))
    second_done.set()
    thread.join(5)
    assert states == [("second", False), ("first, after second ended", False)]
    assert gc.isenabled()
