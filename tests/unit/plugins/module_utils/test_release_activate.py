"""module_utils/release_activate.py's pieces that need no PM2: the atomic switch, the reload lock, the helper's
report, the workers' directories and the PM2 daemon's kill signal (the whole activation runs in tests/hosts)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ansible_collections.flora.deploy.plugins.module_utils.release_activate import (
    ActivateError,
    daemon_kill_signal,
    parse_report,
    switch_link,
    take_reload_lock,
    workers_elsewhere,
)


def test_switch_link_points_the_link_at_the_release_and_says_where_it_pointed(tmp_path):
    (tmp_path / "releases" / "old").mkdir(parents=True)
    (tmp_path / "releases" / "new").mkdir()
    link = tmp_path / "current"
    assert switch_link(str(link), str(tmp_path / "releases" / "old")) == ""
    # A link left half-way by an interrupted switch is replaced too.
    (tmp_path / "current.next").symlink_to("nowhere")

    assert switch_link(str(link), str(tmp_path / "releases" / "new")) == "old"
    assert os.readlink(link) == str(tmp_path / "releases" / "new")
    assert not os.path.lexists(tmp_path / "current.next")


def test_the_reload_lock_waits_for_the_helper_of_an_earlier_reload(tmp_path):
    path = tmp_path / "reload-flora-backend.lock"
    fd = take_reload_lock(str(path), "flora-backend", timeout=1)
    # What the helper does with it: it keeps the lock after the module let go of its copy, here until told to stop.
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"],
        stdin=subprocess.PIPE,
        pass_fds=(fd,),
        start_new_session=True,
    )
    os.close(fd)
    with pytest.raises(ActivateError, match="an earlier reload of flora-backend is still stopping its old workers"):
        take_reload_lock(str(path), "flora-backend", timeout=0.5)
    assert holder.poll() is None
    holder.stdin.close()
    holder.wait(timeout=10)
    again = take_reload_lock(str(path), "flora-backend", timeout=10)
    os.close(again)


def test_parse_report():
    assert parse_report("reloaded\n/srv/releases/b/apps/backend\n/srv/releases/b/apps/backend\n") == (
        "reloaded",
        ["/srv/releases/b/apps/backend", "/srv/releases/b/apps/backend"],
    )
    assert parse_report("reloaded\n") == ("reloaded", [])
    assert parse_report("failed 3\n") == ("failed", ["3"])
    assert parse_report("") == ("silent", [])


def test_workers_elsewhere_names_every_worker_outside_the_release():
    release = "/home/ubuntu/Flora/releases/bbb"
    assert workers_elsewhere([f"{release}/apps/backend", f"{release}/apps/backend"], release) == []
    assert workers_elsewhere([f"{release}/apps/backend", "/home/ubuntu/Flora/releases/aaa/apps/backend"], release) == [
        "/home/ubuntu/Flora/releases/aaa/apps/backend"
    ]
    assert workers_elsewhere(["/home/ubuntu/Flora/releases/bbb-other"], release) == [
        "/home/ubuntu/Flora/releases/bbb-other"
    ]
    assert workers_elsewhere([], release) == ["(none)"]


def test_daemon_kill_signal_reads_the_running_daemons_environment(tmp_path):
    assert daemon_kill_signal(str(tmp_path)) is None
    for env, expected in (({"PM2_KILL_SIGNAL": "SIGTERM"}, "SIGTERM"), ({}, "")):
        # Popen returns once exec has begun, before the kernel has laid out the new environment: the child
        # says when it runs, so the read below sees the environment it was started with.
        daemon = subprocess.Popen(
            [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(30)"],
            env={"PATH": os.environ["PATH"], **env},
            stdout=subprocess.PIPE,
        )
        try:
            assert daemon.stdout.readline() == b"up\n"
            (tmp_path / "pm2.pid").write_text(f"{daemon.pid}\n")
            assert daemon_kill_signal(str(tmp_path)) == expected
        finally:
            daemon.kill()
            daemon.wait()
            daemon.stdout.close()
