from __future__ import annotations

import os

from ansible_collections.flora.deploy.plugins.module_utils.deploy_lock import (
    read_owner,
    release_lock,
    take_lock,
    take_over_lock,
)


class FakeClock:
    """time.time and time.sleep for take_lock: sleeping advances the clock and runs what the test set up."""

    def __init__(self, on_sleep=None):
        self.now = 1_000_000.0
        self.slept = 0
        self.on_sleep = on_sleep

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept += 1
        self.now += seconds
        if self.on_sleep:
            self.on_sleep(self)


def lock_path(tmp_path) -> str:
    return str(tmp_path / ".deploy.lock")


def test_a_free_lock_is_taken_and_names_its_owner(tmp_path):
    path = lock_path(tmp_path)
    assert take_lock(path, "laptop:42:7") == ("", [])
    assert read_owner(path) == "laptop:42:7"


def test_a_held_lock_is_refused_at_once_with_its_holder(tmp_path):
    path = lock_path(tmp_path)
    take_lock(path, "ci:1:1")
    fake = FakeClock()
    os.utime(path, (fake.now, fake.now))

    assert take_lock(path, "laptop:42:7", clock=fake.clock, sleep=fake.sleep) == ("ci:1:1", [])
    assert fake.slept == 0
    assert read_owner(path) == "ci:1:1"


def test_waits_for_the_holder_until_the_timeout(tmp_path):
    path = lock_path(tmp_path)
    take_lock(path, "ci:1:1")

    def release_after_three_seconds(fake):
        if fake.slept == 3:
            os.remove(os.path.join(path, "owner"))
            os.rmdir(path)

    fake = FakeClock(release_after_three_seconds)
    os.utime(path, (fake.now, fake.now))
    assert take_lock(path, "laptop:42:7", timeout=10, clock=fake.clock, sleep=fake.sleep) == ("", [])
    assert fake.slept == 3
    assert read_owner(path) == "laptop:42:7"

    still_held = FakeClock()
    os.utime(path, (still_held.now, still_held.now))
    holder, _notes = take_lock(path, "other:9:9", timeout=5, clock=still_held.clock, sleep=still_held.sleep)
    assert holder == "laptop:42:7"
    assert still_held.slept == 5


def test_a_lock_older_than_its_lease_is_taken_over(tmp_path):
    path = lock_path(tmp_path)
    take_lock(path, "dead:1:1")
    fake = FakeClock()
    os.utime(path, (fake.now - 4000, fake.now - 4000))

    holder, notes = take_lock(path, "laptop:42:7", lease=1800, clock=fake.clock, sleep=fake.sleep)

    assert holder == ""
    assert notes == ["took over a lock left 4000 s ago by dead:1:1"]
    assert read_owner(path) == "laptop:42:7"


def test_take_over_only_from_the_holder_known_to_be_dead(tmp_path):
    path = lock_path(tmp_path)
    take_lock(path, "dead:1:1")
    assert take_over_lock(path, "laptop:42:7", "dead:1:1") == ""
    assert read_owner(path) == "laptop:42:7"
    # Someone else took it meanwhile: theirs is left alone.
    assert take_over_lock(path, "other:9:9", "dead:1:1") == "laptop:42:7"
    assert read_owner(path) == "laptop:42:7"


def test_release_only_by_the_holder(tmp_path):
    path = lock_path(tmp_path)
    take_lock(path, "ci:1:1")
    assert release_lock(path, "laptop:42:7") is False
    assert read_owner(path) == "ci:1:1"
    assert release_lock(path, "ci:1:1") is True
    assert not os.path.exists(path)
    assert release_lock(path, "ci:1:1") is False
