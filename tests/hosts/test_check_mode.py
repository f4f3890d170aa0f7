"""The backend playbooks in check mode, on a fresh host and on a bootstrapped one: each runs to the end, reports
what a real run would change, and changes nothing on the host (every file outside the runtime directories, the
units, the app user's processes and their pids: stack.host_state). rollback_backend.yml and deploy.yml in check
mode are in test_redeploy.py and test_deploy.py."""

from __future__ import annotations

from tests.hosts.conftest import HOST, host_in_place_of_the_test_host
from tests.support import stack
from tests.support.stack import playbook_run

FRESH = "flora-fresh"


def test_bootstrap_in_check_mode_on_a_fresh_host_reports_the_install_and_changes_nothing(host_services, tmp_path):
    with host_in_place_of_the_test_host(host_services, FRESH, tmp_path) as services:
        before = stack.host_state(FRESH)

        checked = playbook_run(services, "bootstrap_ec2.yml", "--check", "--diff")

        assert checked.rc == 0, checked
        # What the real run would do, task by task, and the first release in one line.
        for task in (
            "Install base packages",
            "Create the app user",
            "Download Node.js 24.21.0",
            "Install PM2 6.0.14",
            "Install the systemd unit pm2-ubuntu",
        ):
            assert checked.result(task)["changed"], (task, checked)
        commit = services["commits"]["main"]
        assert checked.result("Say what the first release would be")["msg"] == (
            f"Would build main ({commit[:12]}) as the first release, run its migrations, seed the database and make"
            " it live"
        )
        # The unit as a real run writes it, naming the pm2 command npm installs.
        unit = checked.result("Install the systemd unit pm2-ubuntu")["diff"][0]["after"]
        assert "ExecStart=/usr/local/bin/pm2 start /home/ubuntu/Flora/shared/ecosystem.config.js\n" in unit

        # A redeploy of a host never bootstrapped stops as a real run would, and says why.
        redeploy = playbook_run(services, "redeploy_backend.yml", "--check")
        assert redeploy.rc == 2
        assert redeploy.failure() == (
            "There is no user ubuntu on this host: bootstrap it first (playbooks/bootstrap_ec2.yml)"
        )

        assert stack.state_changes(before, stack.host_state(FRESH)) == {}
        assert checked.changed > 0


def test_every_playbook_in_check_mode_on_a_bootstrapped_host_changes_nothing(bootstrapped_host):
    # The state the bootstrap leaves: main live, so that a redeploy of v2 has something to do.
    main = playbook_run(bootstrapped_host, "redeploy_backend.yml", "-e", "backend_redeploy_ref=main")
    assert main.rc == 0, main
    before = stack.host_state(HOST)

    bootstrap = playbook_run(bootstrapped_host, "bootstrap_ec2.yml", "--check", "--diff")
    assert bootstrap.rc == 0, bootstrap
    # The host is as the bootstrap leaves it: nothing to change, so --diff has nothing to show.
    assert bootstrap.changed == 0, bootstrap

    redeploy = playbook_run(bootstrapped_host, "redeploy_backend.yml", "--check", "-e", "backend_redeploy_ref=v2")
    assert redeploy.rc == 0, redeploy
    assert redeploy.result("Say what this run does")["changed"]

    same = playbook_run(bootstrapped_host, "redeploy_backend.yml", "--check", "--diff")
    assert same.rc == 0 and same.changed == 0, same

    assert stack.state_changes(before, stack.host_state(HOST)) == {}
