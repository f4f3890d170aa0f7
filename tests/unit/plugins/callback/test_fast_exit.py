from __future__ import annotations

import gc
import weakref

import pytest

from ansible_collections.flora.deploy.plugins.callback.fast_exit import CallbackModule


@pytest.fixture
def unfrozen():
    gc.unfreeze()
    yield
    gc.unfreeze()


class Node:
    """An object in a reference cycle: only the cyclic collector frees it."""

    def __init__(self):
        self.itself = self


def test_the_recap_sets_every_object_aside_from_the_collector(unfrozen):
    assert gc.get_freeze_count() == 0
    node = Node()
    alive = weakref.ref(node)

    CallbackModule().v2_playbook_on_stats(stats=None)
    del node
    gc.collect()

    assert gc.get_freeze_count() > 0
    assert alive() is not None


def test_without_it_a_collection_frees_them(unfrozen):
    node = Node()
    alive = weakref.ref(node)
    del node
    gc.collect()

    assert alive() is None
