from __future__ import annotations

import gc
import weakref

import pytest

from ansible_collections.flora.deploy.plugins.module_utils.module_exit import exit_json_without_final_collection


class ExitingModule:
    """Records what exit_json got and how many objects the collector had set aside by then; exits as it does."""

    def __init__(self):
        self.calls = []

    def exit_json(self, **result):
        self.calls.append((result, gc.get_freeze_count()))
        raise SystemExit(0)


def test_exits_with_the_result_once_the_collector_has_set_every_object_aside(new_cycle):
    module = ExitingModule()

    with pytest.raises(SystemExit) as exited:
        exit_json_without_final_collection(module, changed=False, keys=["PORT"])

    assert exited.value.code == 0
    [(result, frozen)] = module.calls
    assert result == {"changed": False, "keys": ["PORT"]}
    assert frozen > 0


def test_objects_alive_at_the_exit_are_left_to_the_process_end(new_cycle):
    node = new_cycle()
    alive = weakref.ref(node)

    with pytest.raises(SystemExit):
        exit_json_without_final_collection(ExitingModule(), changed=False)
    del node
    gc.collect()

    assert alive() is not None


def test_without_it_a_collection_frees_them(new_cycle):
    node = new_cycle()
    alive = weakref.ref(node)
    del node
    gc.collect()

    assert alive() is None
