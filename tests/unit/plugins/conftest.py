"""What the tests of the exits that skip Python's final garbage collection share."""

from __future__ import annotations

import gc

import pytest


class Node:
    """An object in a reference cycle: only the cyclic collector frees it."""

    def __init__(self):
        self.itself = self


@pytest.fixture
def new_cycle():
    """Makes objects only the cyclic collector frees; no object is set aside from it before or after the test."""
    gc.unfreeze()
    yield Node
    gc.unfreeze()
