from __future__ import annotations

import gc
import weakref

from ansible_collections.flora.deploy.plugins.callback.fast_exit import CallbackModule


def test_the_recap_sets_every_object_aside_from_the_collector(new_cycle):
    assert gc.get_freeze_count() == 0
    node = new_cycle()
    alive = weakref.ref(node)

    CallbackModule().v2_playbook_on_stats(stats=None)
    del node
    gc.collect()

    assert gc.get_freeze_count() > 0
    assert alive() is not None
