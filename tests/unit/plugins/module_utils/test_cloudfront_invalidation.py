from __future__ import annotations

import datetime
import json

import botocore.exceptions
import pytest
from ansible_collections.amazon.aws.plugins.module_utils.retries import RetryingBotoClientWrapper

from ansible_collections.flora.deploy.plugins.module_utils.cloudfront_invalidation import (
    INVALIDATE_EVERYTHING,
    InvalidationError,
    InvalidationResult,
    caller_reference,
    drop_covered_paths,
    encode_path,
    ensure_invalidation,
    find_distribution_id,
    find_invalidation,
    invalidation_diff,
    newest_first,
    normalise_path,
    normalise_status,
    plan_paths,
    select_distribution,
    site_url,
    waiter_config,
    with_root_path,
)

START = datetime.datetime(2025, 3, 1, 9, 0, tzinfo=datetime.UTC)


def client_error(code: str, operation: str) -> botocore.exceptions.ClientError:
    return botocore.exceptions.ClientError({"Error": {"Code": code, "Message": f"{code} (fake)"}}, operation)


class FakeCloudFront:
    """CloudFront's invalidation semantics that moto does not reproduce.

    A known caller reference with the same paths returns the first invalidation; with other
    paths it raises InvalidationBatchAlreadyExists. Lists are newest first, new invalidations
    are InProgress, and an unknown distribution raises NoSuchDistribution everywhere.
    """

    def __init__(self, distributions=(), *, listing_order="newest_first"):
        self.distributions = {summary["Id"]: summary for summary in distributions}
        self.invalidations: dict[str, list[dict]] = {dist_id: [] for dist_id in self.distributions}
        self.listing_order = listing_order
        self.calls: list[tuple[str, dict]] = []
        self.errors: dict[str, list[Exception]] = {}
        self.waits: list[dict] = []
        self.waiter_error: Exception | None = None
        self.clock = START
        self.serial = 0

    # Test helpers
    def tick(self) -> datetime.datetime:
        self.clock += datetime.timedelta(seconds=1)
        return self.clock

    def add_invalidation(self, dist_id: str, paths: list[str], reference: str, status: str = "Completed") -> dict:
        self.serial += 1
        invalidation = {
            "Id": f"I{self.serial:04d}",
            "Status": status,
            "CreateTime": self.tick(),
            "InvalidationBatch": {
                "Paths": {"Quantity": len(paths), "Items": list(paths)},
                "CallerReference": reference,
            },
        }
        self.invalidations[dist_id].append(invalidation)
        return invalidation

    def calls_to(self, operation: str) -> list[dict]:
        return [kwargs for name, kwargs in self.calls if name == operation]

    def _record(self, operation: str, kwargs: dict) -> None:
        self.calls.append((operation, kwargs))
        pending = self.errors.get(operation)
        if pending:
            raise pending.pop(0)

    def _distribution(self, dist_id: str, operation: str) -> list[dict]:
        if dist_id not in self.distributions:
            raise client_error("NoSuchDistribution", operation)
        return self.invalidations[dist_id]

    # The boto3 client surface the module uses
    def list_invalidations(self, aws_retry=False, **kwargs):
        self._record("ListInvalidations", kwargs)
        invalidations = self._distribution(kwargs["DistributionId"], "ListInvalidations")
        ordered = list(reversed(invalidations)) if self.listing_order == "newest_first" else list(invalidations)
        page = ordered[: int(kwargs.get("MaxItems", "100"))]
        items = [{key: inv[key] for key in ("Id", "Status", "CreateTime")} for inv in page]
        return {"InvalidationList": {"Quantity": len(items), "IsTruncated": len(page) < len(ordered), "Items": items}}

    def get_invalidation(self, aws_retry=False, **kwargs):
        self._record("GetInvalidation", kwargs)
        for invalidation in self._distribution(kwargs["DistributionId"], "GetInvalidation"):
            if invalidation["Id"] == kwargs["Id"]:
                return {"Invalidation": invalidation}
        raise client_error("NoSuchInvalidation", "GetInvalidation")

    def get_distribution(self, aws_retry=False, **kwargs):
        self._record("GetDistribution", kwargs)
        self._distribution(kwargs["Id"], "GetDistribution")
        summary = self.distributions[kwargs["Id"]]
        config = {"Aliases": summary["Aliases"], "Comment": summary["Comment"]}
        if summary.get("DefaultRootObject") is not None:
            config["DefaultRootObject"] = summary["DefaultRootObject"]
        return {"Distribution": {"Id": kwargs["Id"], "DomainName": summary["DomainName"], "DistributionConfig": config}}

    def create_invalidation(self, aws_retry=False, **kwargs):
        self._record("CreateInvalidation", kwargs)
        dist_id = kwargs["DistributionId"]
        batch = kwargs["InvalidationBatch"]
        assert batch["Paths"]["Quantity"] == len(batch["Paths"]["Items"])
        for invalidation in self._distribution(dist_id, "CreateInvalidation"):
            if invalidation["InvalidationBatch"]["CallerReference"] == batch["CallerReference"]:
                if invalidation["InvalidationBatch"]["Paths"]["Items"] != batch["Paths"]["Items"]:
                    raise client_error("InvalidationBatchAlreadyExists", "CreateInvalidation")
                return {"Invalidation": invalidation, "Location": f"https://fake/{invalidation['Id']}"}
        invalidation = self.add_invalidation(
            dist_id, batch["Paths"]["Items"], batch["CallerReference"], status="InProgress"
        )
        return {"Invalidation": invalidation, "Location": f"https://fake/{invalidation['Id']}"}

    def get_paginator(self, name):
        assert name == "list_distributions"
        fake = self

        class Pages:
            def build_full_result(self):
                fake._record("ListDistributions", {})
                return {"DistributionList": {"Items": list(fake.distributions.values())}}

        class Paginator:
            def paginate(self, **kwargs):
                return Pages()

        return Paginator()

    def get_waiter(self, name):
        assert name == "invalidation_completed"
        fake = self

        class Waiter:
            def wait(self, **kwargs):
                fake.waits.append(kwargs)
                if fake.waiter_error is not None:
                    raise fake.waiter_error
                for invalidation in fake.invalidations[kwargs["DistributionId"]]:
                    if invalidation["Id"] == kwargs["Id"]:
                        invalidation["Status"] = "Completed"

        return Waiter()


def distribution(
    dist_id: str, aliases=(), comment: str = "", domain: str | None = None, root_object: str | None = None
) -> dict:
    """A ListDistributions summary; the default root object is only in GetDistribution's answer."""
    summary = {
        "Id": dist_id,
        "DomainName": domain or f"d{dist_id.lower()}.cloudfront.net",
        "Aliases": {"Quantity": len(aliases), "Items": list(aliases)} if aliases else {"Quantity": 0},
        "Comment": comment,
    }
    if root_object is not None:
        summary["DefaultRootObject"] = root_object
    return summary


@pytest.fixture
def cloudfront() -> FakeCloudFront:
    return FakeCloudFront(
        [distribution("EFLORA", ["shop.flora.example"], "flora frontend (prod)", root_object="index.html")]
    )


# Paths


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("/index.html", "/index.html"),
        ("index.html", "/index.html"),
        ("/menu du jour.html", "/menu%20du%20jour.html"),
        ("/café/crème.png", "/caf%C3%A9/cr%C3%A8me.png"),
        ("/花/bouquet.jpg", "/%E8%8A%B1/bouquet.jpg"),
        ('/a<b>c"d#e%f{g}h|i\\j^k~l[m]n`o', "/a%3Cb%3Ec%22d%23e%25f%7Bg%7Dh%7Ci%5Cj%5Ek%7El%5Bm%5Dn%60o"),
        ("/search?q=roses&page=2", "/search?q=roses&page=2"),
        ("/a+b/(c)!$',;:@=", "/a+b/(c)!$',;:@="),
        ("/assets/*", "/assets/*"),
        ("/assets/img*", "/assets/img*"),
        ("/odd*name.js", "/odd%2Aname.js"),
        ("/odd*/*", "/odd%2A/*"),
        ("/*", "/*"),
        ("*", "/*"),
        ("/", "/"),
        ("/100%.html", "/100%25.html"),
        ("/tab\there", "/tab%09here"),
    ],
)
def test_paths_are_normalised_and_encoded(raw, expected):
    assert normalise_path(raw) == expected


def test_encoding_is_not_applied_twice_to_documented_unencoded_input():
    # The module takes unencoded paths: "%20" is a literal percent sign followed by "20".
    assert encode_path("/a%20b") == "/a%2520b"


def test_empty_and_overlong_paths_are_rejected():
    with pytest.raises(InvalidationError, match="empty"):
        normalise_path("")
    with pytest.raises(InvalidationError, match="4000"):
        normalise_path("/" + "é" * 1400)
    assert len(normalise_path("/" + "a" * 3999)) == 4000


def test_plan_deduplicates_and_sorts():
    plan = plan_paths(["/b.js", "a.js", "/a.js", "/b.js", "/C.js"])
    assert plan.paths == ["/C.js", "/a.js", "/b.js"]
    assert plan.collapsed is False


def test_plan_drops_paths_a_wildcard_covers():
    plan = plan_paths(["/assets/app.js", "/assets/*", "/assets/img/logo.png", "/assets/img/*", "/index.html"])
    assert plan.paths == ["/assets/*", "/index.html"]
    assert plan.collapsed is False


def test_covering_needs_a_proper_prefix():
    # "/a/*" may not match the object "/a/" itself; "/ab" is not under "/a/".
    assert drop_covered_paths(["/a/", "/a/*", "/ab", "/a*x"]) == ["/a/", "/a/*", "/ab", "/a*x"]
    assert drop_covered_paths(["/a*", "/a/*", "/ab"]) == ["/a*"]


def test_plan_collapses_when_everything_is_asked_for():
    assert plan_paths(["/index.html", "/*"]) == (["/*"], True)
    assert plan_paths(["*"]) == (["/*"], False)


def test_plan_collapses_beyond_fifteen_wildcards():
    fifteen = [f"/w{i:02d}/*" for i in range(15)]
    assert plan_paths(fifteen) == (sorted(fifteen), False)
    assert plan_paths(fifteen + ["/w15/*"]) == ([INVALIDATE_EVERYTHING], True)


def test_wildcards_covered_by_others_do_not_count_towards_the_limit():
    nested = [f"/assets/w{i:02d}/*" for i in range(20)] + ["/assets/*"]
    assert plan_paths(nested) == (["/assets/*"], False)


def test_plan_collapses_beyond_three_thousand_paths():
    three_thousand = [f"/p/{i:04d}.html" for i in range(3000)]
    assert plan_paths(three_thousand).paths == sorted(three_thousand)
    assert plan_paths(three_thousand + ["/p/3000.html"]) == ([INVALIDATE_EVERYTHING], True)
    # Duplicates and spelling variants count once.
    assert plan_paths(three_thousand + ["p/0000.html", "/p/0001.html"]).collapsed is False


@pytest.mark.parametrize(
    "paths, root_object, expected",
    [
        (["/index.html"], "index.html", ["/index.html", "/"]),
        (["/flora-logo.png", "index.html"], "/index.html", ["/flora-logo.png", "index.html", "/"]),
        (["/menu du jour.html"], "menu du jour.html", ["/menu du jour.html", "/"]),
        (["/menu%20du%20jour.html"], "menu du jour.html", ["/menu%20du%20jour.html"]),
        (["/flora-logo.png"], "index.html", ["/flora-logo.png"]),
        (["/shop/index.html"], "index.html", ["/shop/index.html"]),
        (["/index.html"], "", ["/index.html"]),
        (["/index.html"], None, ["/index.html"]),
        (["/*"], "index.html", ["/*"]),
    ],
)
def test_the_root_is_invalidated_with_the_default_root_object(paths, root_object, expected):
    assert with_root_path(paths, root_object) == expected


def test_plan_needs_a_path():
    with pytest.raises(InvalidationError, match="at least one"):
        plan_paths([])


# Caller reference


def test_caller_reference_is_deterministic_and_order_independent():
    reference = caller_reference(["/a", "/b"], "abc123")
    assert reference == caller_reference(["/b", "/a"], "abc123")
    assert reference.startswith("flora-") and len(reference) == len("flora-") + 32
    assert all(c in "0123456789abcdef" for c in reference[len("flora-") :])


def test_caller_reference_changes_with_paths_and_release():
    base = caller_reference(["/a"], None)
    assert base == caller_reference(["/a"], "")
    assert len({base, caller_reference(["/a"], "r1"), caller_reference(["/a"], "r2"), caller_reference(["/b"])}) == 4
    # No ambiguity from joining: the paths and the release are encoded separately.
    assert caller_reference(["/a", "/b"]) != caller_reference(["/a"], "/b")


# Distributions

SUMMARIES = [
    distribution("EPROD", ["shop.flora.example", "www.flora.example"], "flora frontend (prod)"),
    distribution("ESTAGE", ["staging.flora.example"], "flora frontend (staging)"),
    distribution("EOTHER", [], "marketing site", domain="d111111abcdef8.cloudfront.net"),
]


def test_select_by_alias_is_exact_and_case_insensitive():
    assert select_distribution(SUMMARIES, alias="WWW.flora.example.") == "EPROD"
    assert select_distribution(SUMMARIES, alias="staging.flora.example") == "ESTAGE"
    assert select_distribution(SUMMARIES, alias="d111111abcdef8.cloudfront.net") == "EOTHER"
    with pytest.raises(InvalidationError, match="No CloudFront distribution has the alias 'flora.example'"):
        select_distribution(SUMMARIES, alias="flora.example")


def test_select_by_comment():
    assert select_distribution(SUMMARIES, comment_contains="(staging)") == "ESTAGE"
    assert select_distribution(SUMMARIES, comment_contains="marketing") == "EOTHER"


def test_ambiguous_comment_lists_the_ids():
    with pytest.raises(InvalidationError) as caught:
        select_distribution(SUMMARIES, comment_contains="flora")
    assert str(caught.value) == (
        "2 CloudFront distributions have a comment containing 'flora': EPROD, ESTAGE; set distribution_id to choose one"
    )
    assert caught.value.details == {"matching_distribution_ids": ["EPROD", "ESTAGE"]}


def test_comment_match_is_case_sensitive_and_needs_text():
    with pytest.raises(InvalidationError, match="No CloudFront distribution has a comment containing 'Flora'"):
        select_distribution(SUMMARIES, comment_contains="Flora")
    with pytest.raises(InvalidationError, match="non-empty"):
        select_distribution(SUMMARIES, comment_contains="")


def test_find_distribution_id_lists_once():
    client = FakeCloudFront(SUMMARIES)
    assert find_distribution_id(client, alias="shop.flora.example") == "EPROD"
    assert [call[0] for call in client.calls] == ["ListDistributions"]


# Recent invalidations


def test_newest_first_sorts_by_create_time():
    old = {"Id": "OLD", "CreateTime": START}
    new = {"Id": "NEW", "CreateTime": START + datetime.timedelta(minutes=1)}
    assert [s["Id"] for s in newest_first([old, new])] == ["NEW", "OLD"]


def test_find_invalidation_stops_at_first_match():
    fetched = []
    batches = {
        "I3": {"Id": "I3", "InvalidationBatch": {"CallerReference": "other"}},
        "I2": {"Id": "I2", "InvalidationBatch": {"CallerReference": "mine"}},
        "I1": {"Id": "I1", "InvalidationBatch": {"CallerReference": "mine"}},
    }
    summaries = [{"Id": f"I{n}", "CreateTime": START + datetime.timedelta(seconds=n)} for n in (1, 2, 3)]

    def get(invalidation_id):
        fetched.append(invalidation_id)
        return batches[invalidation_id]

    assert find_invalidation(summaries, "mine", get)["Id"] == "I2"
    assert fetched == ["I3", "I2"]
    fetched.clear()
    assert find_invalidation(summaries, "missing", get) is None
    assert fetched == ["I3", "I2", "I1"]


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("Completed", "Completed"),
        ("COMPLETED", "Completed"),
        ("InProgress", "InProgress"),
        ("IN_PROGRESS", "InProgress"),
        (None, None),
        ("Odd", "Odd"),
    ],
)
def test_status_spelling(raw, expected):
    assert normalise_status(raw) == expected


@pytest.mark.parametrize(
    "timeout, expected",
    [
        (600, {"Delay": 20, "MaxAttempts": 31}),
        (61, {"Delay": 20, "MaxAttempts": 4}),
        (5, {"Delay": 5, "MaxAttempts": 2}),
        (1, {"Delay": 1, "MaxAttempts": 2}),
    ],
)
def test_waiter_config_fits_the_timeout(timeout, expected):
    config = waiter_config(timeout)
    assert config == expected
    assert (config["MaxAttempts"] - 1) * config["Delay"] <= timeout


# The whole flow against CloudFront's de-duplication


def test_first_run_creates_and_second_run_finds_it(cloudfront):
    first = ensure_invalidation(cloudfront, "EFLORA", ["/index.html", "assets/*"], release_id="abc")
    assert first.changed is True
    assert first.status == "InProgress"
    assert first.paths == ["/assets/*", "/index.html"]
    assert first.caller_reference == caller_reference(["/assets/*", "/index.html"], "abc")
    created = cloudfront.invalidations["EFLORA"]
    assert [inv["InvalidationBatch"]["Paths"]["Items"] for inv in created] == [["/assets/*", "/index.html"]]

    second = ensure_invalidation(cloudfront, "EFLORA", ["/assets/*", "/index.html", "/index.html"], release_id="abc")
    assert second == first._replace(changed=False)
    assert len(cloudfront.invalidations["EFLORA"]) == 1
    assert len(cloudfront.calls_to("CreateInvalidation")) == 1


def test_only_one_page_of_recent_invalidations_is_read(cloudfront):
    for n in range(30):
        cloudfront.add_invalidation("EFLORA", [f"/old{n}"], f"old-{n}")
    result = ensure_invalidation(cloudfront, "EFLORA", ["/index.html"], release_id="r1", recent_limit=5)
    assert result.changed is True
    assert cloudfront.calls_to("ListInvalidations") == [{"DistributionId": "EFLORA", "MaxItems": "5"}]
    assert len(cloudfront.calls_to("GetInvalidation")) == 5


def test_match_is_found_even_when_listed_oldest_first():
    client = FakeCloudFront([distribution("EFLORA")], listing_order="oldest_first")
    client.add_invalidation("EFLORA", ["/a"], "older")
    mine = client.add_invalidation("EFLORA", ["/index.html"], caller_reference(["/index.html"], "r1"))
    result = ensure_invalidation(client, "EFLORA", ["/index.html"], release_id="r1")
    assert (result.changed, result.invalidation_id) == (False, mine["Id"])
    # Sorted newest first within the page, so the match is the first invalidation fetched.
    assert [call["Id"] for call in client.calls_to("GetInvalidation")] == [mine["Id"]]


def test_a_new_release_creates_a_new_invalidation(cloudfront):
    first = ensure_invalidation(cloudfront, "EFLORA", ["/index.html"], release_id="r1")
    second = ensure_invalidation(cloudfront, "EFLORA", ["/index.html"], release_id="r2")
    assert second.changed is True
    assert second.invalidation_id != first.invalidation_id
    assert second.caller_reference != first.caller_reference
    assert len(cloudfront.invalidations["EFLORA"]) == 2


def test_match_outside_the_window_is_not_reported_as_a_change(cloudfront):
    mine = cloudfront.add_invalidation("EFLORA", ["/index.html"], caller_reference(["/index.html"], "r1"))
    for n in range(3):
        cloudfront.add_invalidation("EFLORA", [f"/later{n}"], f"later-{n}")
    result = ensure_invalidation(cloudfront, "EFLORA", ["/index.html"], release_id="r1", recent_limit=2)
    # CloudFront returned the first invalidation for the reference instead of creating one.
    assert (result.changed, result.invalidation_id) == (False, mine["Id"])
    assert len(cloudfront.invalidations["EFLORA"]) == 4
    assert len(cloudfront.calls_to("CreateInvalidation")) == 1


def test_check_mode_creates_nothing_and_predicts_the_change(cloudfront):
    result = ensure_invalidation(cloudfront, "EFLORA", ["/index.html"], release_id="r1", check_mode=True, wait=True)
    assert result == InvalidationResult(
        changed=True,
        distribution_id="EFLORA",
        invalidation_id=None,
        status=None,
        paths=["/index.html"],
        caller_reference=caller_reference(["/index.html"], "r1"),
        collapsed=False,
        distribution={
            "domain_name": "deflora.cloudfront.net",
            "aliases": ["shop.flora.example"],
            "url": "https://shop.flora.example",
            "default_root_object": "index.html",
        },
    )
    assert cloudfront.invalidations["EFLORA"] == []
    assert cloudfront.calls_to("CreateInvalidation") == []
    assert cloudfront.waits == []


def test_check_mode_after_a_real_run_is_unchanged(cloudfront):
    created = ensure_invalidation(cloudfront, "EFLORA", ["/index.html"], release_id="r1")
    predicted = ensure_invalidation(cloudfront, "EFLORA", ["/index.html"], release_id="r1", check_mode=True)
    assert (predicted.changed, predicted.invalidation_id) == (False, created.invalidation_id)
    # The dry run reads the distribution whether or not it finds the invalidation.
    assert predicted.distribution["default_root_object"] == "index.html"
    assert cloudfront.calls_to("GetDistribution") == [{"Id": "EFLORA"}]
    assert created.distribution is None and "distribution" not in created.as_module_result()


def test_the_default_root_object_brings_the_root_along(cloudfront):
    result = ensure_invalidation(
        cloudfront, "EFLORA", ["/index.html", "/flora-logo.png"], release_id="r1", default_root_object="index.html"
    )
    assert result.paths == ["/", "/flora-logo.png", "/index.html"]
    assert result.caller_reference == caller_reference(["/", "/flora-logo.png", "/index.html"], "r1")
    created = cloudfront.invalidations["EFLORA"]
    assert [inv["InvalidationBatch"]["Paths"]["Items"] for inv in created] == [["/", "/flora-logo.png", "/index.html"]]
    # Given by the caller: nothing is read for it.
    assert cloudfront.calls_to("GetDistribution") == []

    again = ensure_invalidation(
        cloudfront, "EFLORA", ["/index.html", "/flora-logo.png"], release_id="r1", default_root_object="index.html"
    )
    assert (again.changed, again.invalidation_id) == (False, result.invalidation_id)


def test_the_root_is_left_alone_when_the_default_root_object_did_not_change(cloudfront):
    result = ensure_invalidation(cloudfront, "EFLORA", ["/flora-logo.png"], default_root_object="index.html")
    assert result.paths == ["/flora-logo.png"]
    assert [inv["InvalidationBatch"]["Paths"]["Items"] for inv in cloudfront.invalidations["EFLORA"]] == [
        ["/flora-logo.png"]
    ]


def test_a_distribution_without_a_default_root_object_reads_as_empty():
    client = FakeCloudFront([distribution("EBARE")])
    result = ensure_invalidation(client, "EBARE", ["/index.html"], check_mode=True)
    assert result.distribution == {
        "domain_name": "debare.cloudfront.net",
        "aliases": [],
        "url": "https://debare.cloudfront.net",
        "default_root_object": "",
    }


@pytest.mark.parametrize(
    "domain_name, aliases, expected",
    [
        ("d111111abcdef8.cloudfront.net", ["shop.flora.example", "www.flora.example"], "https://shop.flora.example"),
        ("d111111abcdef8.cloudfront.net", [], "https://d111111abcdef8.cloudfront.net"),
        ("d111111abcdef8.cloudfront.net", ["*.flora.example", "Shop.Flora.Example."], "https://shop.flora.example"),
        ("d111111abcdef8.cloudfront.net", ["*.flora.example"], "https://d111111abcdef8.cloudfront.net"),
        ("", [], ""),
    ],
)
def test_the_site_url_is_the_first_alias_else_the_domain_name(domain_name, aliases, expected):
    assert site_url(domain_name, aliases) == expected


def test_same_reference_with_other_paths_is_a_clear_error(cloudfront):
    reference = caller_reference(["/index.html"], "r1")
    for n in range(12):
        cloudfront.add_invalidation("EFLORA", [f"/filler{n}"], f"filler-{n}")
    cloudfront.invalidations["EFLORA"].insert(
        0,
        {
            "Id": "ICLASH",
            "Status": "Completed",
            "CreateTime": START,
            "InvalidationBatch": {"Paths": {"Quantity": 1, "Items": ["/elsewhere"]}, "CallerReference": reference},
        },
    )
    with pytest.raises(InvalidationError) as caught:
        ensure_invalidation(cloudfront, "EFLORA", ["/index.html"], release_id="r1")
    assert f"already has an invalidation with caller reference {reference} for other paths" in str(caught.value)
    assert "set a different release_id" in str(caught.value)
    assert caught.value.details["caller_reference"] == reference


def test_same_reference_with_other_paths_in_the_window_is_the_same_error(cloudfront):
    reference = caller_reference(["/index.html"], "r1")
    cloudfront.add_invalidation("EFLORA", ["/elsewhere"], reference)
    with pytest.raises(InvalidationError, match="for other paths"):
        ensure_invalidation(cloudfront, "EFLORA", ["/index.html"], release_id="r1")
    assert cloudfront.calls_to("CreateInvalidation") == []


@pytest.mark.parametrize("check_mode", [False, True])
def test_unknown_distribution_is_a_clear_error(cloudfront, check_mode):
    with pytest.raises(InvalidationError, match="^CloudFront distribution ENOPE does not exist$"):
        ensure_invalidation(cloudfront, "ENOPE", ["/index.html"], check_mode=check_mode)


def test_unknown_distribution_on_create_is_a_clear_error(cloudfront):
    # moto lists no invalidations for an unknown distribution; creating one is what fails.
    cloudfront.list_invalidations = lambda **kwargs: {"InvalidationList": {"Quantity": 0}}
    with pytest.raises(InvalidationError, match="^CloudFront distribution ENOPE does not exist$"):
        ensure_invalidation(cloudfront, "ENOPE", ["/index.html"])


def test_unknown_distribution_in_check_mode_is_a_clear_error_where_listing_does_not_fail(cloudfront):
    # moto lists no invalidations for an unknown distribution; the dry run must still refuse it.
    cloudfront.list_invalidations = lambda **kwargs: {"InvalidationList": {"Quantity": 0}}
    with pytest.raises(InvalidationError, match="^CloudFront distribution ENOPE does not exist$"):
        ensure_invalidation(cloudfront, "ENOPE", ["/index.html"], check_mode=True)
    assert cloudfront.calls_to("GetDistribution") == [{"Id": "ENOPE"}]
    assert cloudfront.calls_to("CreateInvalidation") == []


def test_wait_uses_the_waiter_with_the_timeout(cloudfront):
    result = ensure_invalidation(cloudfront, "EFLORA", ["/index.html"], wait=True, wait_timeout=120)
    assert result.status == "Completed"
    assert cloudfront.waits == [
        {"DistributionId": "EFLORA", "Id": result.invalidation_id, "WaiterConfig": {"Delay": 20, "MaxAttempts": 7}}
    ]


def test_wait_on_a_found_invalidation_in_progress(cloudfront):
    reference = caller_reference(["/index.html"], "r1")
    found = cloudfront.add_invalidation("EFLORA", ["/index.html"], reference, status="InProgress")
    result = ensure_invalidation(cloudfront, "EFLORA", ["/index.html"], release_id="r1", wait=True)
    assert (result.changed, result.invalidation_id, result.status) == (False, found["Id"], "Completed")
    assert len(cloudfront.waits) == 1


def test_no_waiting_in_check_mode(cloudfront):
    reference = caller_reference(["/index.html"], "r1")
    found = cloudfront.add_invalidation("EFLORA", ["/index.html"], reference, status="InProgress")
    result = ensure_invalidation(cloudfront, "EFLORA", ["/index.html"], release_id="r1", wait=True, check_mode=True)
    assert (result.changed, result.invalidation_id, result.status) == (False, found["Id"], "InProgress")
    assert cloudfront.waits == []


def test_no_waiting_for_a_completed_invalidation(cloudfront):
    cloudfront.add_invalidation("EFLORA", ["/index.html"], caller_reference(["/index.html"], None), status="COMPLETED")
    result = ensure_invalidation(cloudfront, "EFLORA", ["/index.html"], wait=True)
    assert result.status == "Completed"
    assert cloudfront.waits == []


def test_wait_timeout_reports_the_invalidation(cloudfront):
    cloudfront.waiter_error = botocore.exceptions.WaiterError(
        name="InvalidationCompleted", reason="Max attempts exceeded", last_response={}
    )
    with pytest.raises(InvalidationError) as caught:
        ensure_invalidation(cloudfront, "EFLORA", ["/index.html"], wait=True, wait_timeout=40)
    created = cloudfront.invalidations["EFLORA"][0]
    assert str(caught.value).startswith(
        f"Invalidation {created['Id']} on CloudFront distribution EFLORA did not complete within 40 seconds"
    )
    assert caught.value.details["invalidation_id"] == created["Id"]
    assert caught.value.details["changed"] is True


def test_diff_shows_the_paths():
    result = InvalidationResult(True, "EFLORA", None, None, ["/a", "/b"], "flora-x", False)
    diff = invalidation_diff(result)
    assert diff["before"] == {"paths": []}
    assert diff["after"] == {"paths": ["/a", "/b"]}
    assert diff["before_header"] == "CloudFront distribution EFLORA, caller reference flora-x"
    unchanged = invalidation_diff(result._replace(changed=False))
    assert unchanged["before"] == unchanged["after"]


# The module's main(): argument spec, retries, results

DEPLOYER_ARN = "arn:aws:iam::123456789012:user/flora-prod-awx"


class CallerIdentity:
    """STS, which the module asks who it runs as when AWS refuses it without saying."""

    def get_caller_identity(self):
        return {"Arn": DEPLOYER_ARN}


@pytest.fixture
def module(monkeypatch, capsys, cloudfront):
    """Run the module's main() against the fake client, wrapped in the module's own retry decorator."""
    from ansible.module_utils.testing import patch_module_args
    from ansible_collections.amazon.aws.plugins.module_utils import cloud
    from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

    from ansible_collections.flora.deploy.plugins.modules import cloudfront_invalidation

    sleeps = []
    monkeypatch.setattr(cloud.time, "sleep", sleeps.append)

    def client(self, service, retry_decorator=None, **kwargs):
        if service == "sts":
            return CallerIdentity()
        assert service == "cloudfront"
        return RetryingBotoClientWrapper(cloudfront, retry_decorator)

    monkeypatch.setattr(AnsibleAWSModule, "client", client)

    def run(args):
        base = {"_ansible_check_mode": False, "_ansible_diff": False}
        base.update(args)
        with patch_module_args(base), pytest.raises(SystemExit) as exited:
            cloudfront_invalidation.main()
        output = json.loads(capsys.readouterr().out)
        output["_rc"] = exited.value.code
        output["_sleeps"] = list(sleeps)
        return output

    return run


def test_module_creates_then_reports_unchanged(module, cloudfront):
    first = module({"distribution_id": "EFLORA", "paths": ["index.html", "/menu du jour.html"], "release_id": "r1"})
    assert first["_rc"] == 0
    assert first["changed"] is True
    assert first["paths"] == ["/index.html", "/menu%20du%20jour.html"]
    assert first["status"] == "InProgress"
    assert first["invalidation_id"] == cloudfront.invalidations["EFLORA"][0]["Id"]
    assert first["caller_reference"] == caller_reference(first["paths"], "r1")
    assert (first["distribution_id"], first["collapsed"]) == ("EFLORA", False)
    assert "diff" not in first

    second = module(
        {"distribution_id": "EFLORA", "target_paths": ["/menu du jour.html", "/index.html"], "release_id": "r1"}
    )
    assert second["changed"] is False
    assert second["invalidation_id"] == first["invalidation_id"]


def test_module_check_and_diff(module, cloudfront):
    result = module(
        {"alias": "shop.flora.example", "paths": ["/a", "/b"], "_ansible_check_mode": True, "_ansible_diff": True}
    )
    assert result["changed"] is True
    assert result["invalidation_id"] is None
    assert result["diff"]["before"] == {"paths": []}
    assert result["diff"]["after"] == {"paths": ["/a", "/b"]}
    assert cloudfront.invalidations["EFLORA"] == []
    assert result["distribution"] == {
        "domain_name": "deflora.cloudfront.net",
        "aliases": ["shop.flora.example"],
        "url": "https://shop.flora.example",
        "default_root_object": "index.html",
    }


def test_module_invalidates_the_root_with_the_default_root_object(module, cloudfront):
    result = module({"distribution_id": "EFLORA", "paths": ["/index.html"], "default_root_object": "index.html"})
    assert result["changed"] is True
    assert result["paths"] == ["/", "/index.html"]
    assert "distribution" not in result
    assert cloudfront.invalidations["EFLORA"][0]["InvalidationBatch"]["Paths"]["Items"] == ["/", "/index.html"]


def test_module_retries_too_many_invalidations_in_progress(module, cloudfront):
    cloudfront.errors["CreateInvalidation"] = [
        client_error("TooManyInvalidationsInProgress", "CreateInvalidation"),
        client_error("Throttling", "CreateInvalidation"),
    ]
    result = module({"comment_contains": "flora", "paths": ["/index.html"]})
    assert result["changed"] is True
    assert len(cloudfront.calls_to("CreateInvalidation")) == 3
    assert len(result["_sleeps"]) == 2
    assert len(cloudfront.invalidations["EFLORA"]) == 1


def test_module_fails_on_other_errors_without_retrying(module, cloudfront):
    cloudfront.errors["CreateInvalidation"] = [client_error("AccessDenied", "CreateInvalidation")]
    result = module({"distribution_id": "EFLORA", "paths": ["/index.html"]})
    assert result["failed"] is True
    assert result["msg"].startswith(
        f"Failed to invalidate paths on CloudFront distribution EFLORA: {DEPLOYER_ARN} may not "
        "cloudfront:CreateInvalidation on CloudFront distribution EFLORA: add the statement CreateInvalidations "
        "(flora.deploy.iam_policies, the deployer policy) to its policy"
    )
    assert result["error"]["code"] == "AccessDenied"
    assert len(cloudfront.calls_to("CreateInvalidation")) == 1


def test_module_listing_failure_message(module, cloudfront):
    cloudfront.errors["ListDistributions"] = [client_error("AccessDenied", "ListDistributions")]
    result = module({"alias": "shop.flora.example", "paths": ["/index.html"]})
    assert result["failed"] is True
    assert result["msg"].startswith(
        f"Failed to list CloudFront distributions: {DEPLOYER_ARN} may not cloudfront:ListDistributions on the "
        "CloudFront distributions: add the statement FindDistribution"
    )
    assert cloudfront.calls_to("ListInvalidations") == []


def test_module_lookup_failure_message(module):
    result = module({"comment_contains": "nothing like this", "paths": ["/index.html"]})
    assert result["failed"] is True
    assert result["msg"] == "No CloudFront distribution has a comment containing 'nothing like this'"


@pytest.mark.parametrize(
    "args, message",
    [
        ({"paths": ["/a"]}, "one of the following is required: distribution_id, alias, comment_contains"),
        ({"paths": ["/a"], "alias": "x", "distribution_id": "E"}, "parameters are mutually exclusive"),
        ({"paths": ["/a"], "alias": "x", "recent_invalidations": 0}, "recent_invalidations must be between 1 and 100"),
        ({"paths": ["/a"], "alias": "x", "wait_timeout": 0}, "wait_timeout must be at least 1 second"),
    ],
)
def test_module_argument_validation(module, cloudfront, args, message):
    result = module(args)
    assert result["failed"] is True
    assert message in result["msg"]
    assert cloudfront.calls == []
