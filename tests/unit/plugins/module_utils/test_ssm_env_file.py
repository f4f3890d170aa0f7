from __future__ import annotations

import pytest

from ansible_collections.flora.deploy.plugins.module_utils.ssm_env_file import check_version_at_least, sdk_warning


@pytest.mark.parametrize(
    ("version", "minimum", "expected"),
    [
        ("1.29.27", "1.29.0", True),
        ("1.29.0", "1.29.0", True),
        ("1.28.99", "1.29.0", False),
        ("1.100.0", "1.29.0", True),
        ("2.0", "1.29.0", True),
        ("1.40.0rc1", "1.40.0", True),
        ("1.20.34", "1.26.0", False),
    ],
)
def test_release_numbers_compare_part_by_part(version, minimum, expected):
    assert check_version_at_least(version, minimum) is expected


def test_debian_12_boto3_gets_no_warning():
    assert sdk_warning({"boto3_version": "1.26.27", "botocore_version": "1.29.27"}) is None


def test_an_older_boto3_is_named_in_the_warning():
    message = sdk_warning({"boto3_version": "1.20.34", "botocore_version": "1.23.34"})
    assert message == (
        "boto3 1.20.34 and botocore 1.23.34 on this host: older than the oldest tested with the Parameter Store"
        " modules (boto3 1.26.0, botocore 1.29.0)"
    )


def test_only_the_old_package_is_named():
    message = sdk_warning({"boto3_version": "1.34.0", "botocore_version": "1.28.1"})
    assert message.startswith("botocore 1.28.1 on this host:")
