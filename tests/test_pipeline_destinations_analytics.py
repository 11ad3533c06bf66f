"""The analytics destination against local servers speaking Segment, Mixpanel and Amplitude."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from deeployd.pipelines.destinations import (
    ConfigError,
    Delivery,
    DeliveryContext,
    DeliveryError,
    get_destination,
)
from deeployd.pipelines.transforms import OutItem
from deeployd.settings import Settings
from tests.fakes import serve
from tests.fakes.analytics import AnalyticsFake

PIPELINE = "pl_analytics_test"


@pytest.fixture
async def fake() -> AsyncIterator[tuple[AnalyticsFake, str]]:
    saas = AnalyticsFake()
    async with serve(saas.app) as url:
        yield saas, url


def items(n: int, start: int = 1, **extra: Any) -> list[OutItem]:
    return [
        OutItem(
            value={
                "event_type": "agent_completion",
                "agent_id": f"agent-{i % 3}",
                "tokens": i,
                "timestamp": "2026-11-24T10:00:00Z",
                **extra,
            },
            first_offset=i,
            last_offset=i,
            ingest_ms=1_790_000_000_000,
        )
        for i in range(start, start + n)
    ]


async def deliver(
    config: dict[str, Any], batch: list[OutItem], *, private: bool = True
) -> list[tuple[OutItem, str]]:
    """Deliver; returns the items the destination refused one by one, with the reason."""
    async with httpx.AsyncClient() as http:
        ctx = DeliveryContext(
            org_id="org_test",
            pipeline_id=PIPELINE,
            config=config,
            http=http,
            settings=Settings(allow_private_urls=private),
            db=None,  # type: ignore[arg-type]  (not needed: every item names its event)
        )
        delivery = Delivery(items=batch)
        await get_destination("analytics").deliver(ctx, delivery)
    return delivery.rejected


async def test_segment_batches_track_calls_with_write_key_auth_and_stable_message_ids(fake) -> None:
    saas, url = fake
    config = {"provider": "segment", "writeKey": "seg-write-key", "baseUrl": url}
    batch = items(5)
    await deliver(config, batch)
    await deliver(config, batch)  # a redelivery (retry, replay) must not double count
    assert len(saas.requests) == 2
    assert len(saas.segment) == 5
    message = next(iter(saas.segment.values()))
    assert message["type"] == "track"
    assert message["event"] == "agent_completion"
    assert message["userId"].startswith("agent-")
    assert message["timestamp"] == "2026-11-24T10:00:00.000Z"
    assert "event_type" not in message["properties"] and message["properties"]["tokens"] >= 1
    user, _, _ = (
        base64.b64decode(saas.requests[0].headers["authorization"].split()[1])
        .decode()
        .partition(":")
    )
    assert user == "seg-write-key"


async def test_segment_splits_requests_at_500kb_and_refuses_messages_over_32kb(fake) -> None:
    saas, url = fake
    config = {"provider": "segment", "writeKey": "seg-write-key", "baseUrl": url}
    await deliver(config, items(40, pad="x" * 20_000))  # ~800 KB in all, 20 KB each
    assert len(saas.requests) >= 2
    assert all(r.size <= 500 * 1024 for r in saas.requests)
    assert len(saas.segment) == 40
    # One event over 32 KB is refused on its own, before sending; its batch-mates go through.
    batch = items(3, start=100)
    big = items(1, start=103, pad="x" * 40_000)
    refused = await deliver(config, batch + big)
    assert [(item, "32768" in why) for item, why in refused] == [(big[0], True)]
    assert len(saas.segment) == 43


async def test_segment_wrong_write_key_is_not_retried(fake) -> None:
    _, url = fake
    with pytest.raises(DeliveryError) as caught:
        await deliver({"provider": "segment", "writeKey": "wrong", "baseUrl": url}, items(1))
    assert not caught.value.retryable
    assert "401" in str(caught.value) and "wrong" not in str(caught.value)


async def test_mixpanel_import_in_requests_of_at_most_2000_with_insert_ids(fake) -> None:
    saas, url = fake
    config = {"provider": "mixpanel", "projectToken": "mp-project-token", "baseUrl": url}
    await deliver(config, items(2500))
    assert [len(r.body) for r in saas.requests] == [2000, 500]
    assert all(r.query == {"strict": "1"} for r in saas.requests)
    assert len(saas.mixpanel) == 2500
    event = next(iter(saas.mixpanel.values()))
    assert event["event"] == "agent_completion"
    assert event["properties"]["time"] == 1_795_514_400_000  # 2026-11-24T10:00:00Z in ms
    assert event["properties"]["distinct_id"].startswith("agent-")
    await deliver(config, items(10))  # redelivering offsets 1..10 imports nothing new
    assert len(saas.mixpanel) == 2500


async def test_mixpanel_service_account_auth_sends_the_project_id(fake) -> None:
    saas, url = fake
    config = {
        "provider": "mixpanel",
        "serviceAccountUsername": "sa.user",
        "serviceAccountSecret": "sa-secret",
        "projectId": "4242",
        "baseUrl": url,
    }
    await deliver(config, items(2))
    assert saas.requests[0].query == {"strict": "1", "project_id": "4242"}
    assert len(saas.mixpanel) == 2
    with pytest.raises(DeliveryError) as caught:
        await deliver({**config, "serviceAccountSecret": "wrong"}, items(1))
    assert not caught.value.retryable and "401" in str(caught.value)
    assert "wrong" not in str(caught.value)


async def test_mixpanel_strict_mode_rejections_are_reported_not_retried(fake) -> None:
    saas, url = fake
    saas.inject(
        400,
        {
            "code": 400,
            "error": "some data points in the request failed validation",
            "failed_records": [
                {"index": 1, "$insert_id": "x", "field": "properties.time", "message": "too old"}
            ],
            "num_records_imported": 2,
            "status": "Bad Request",
        },
    )
    batch = items(3)
    refused = await deliver({"provider": "mixpanel", "projectToken": "t", "baseUrl": url}, batch)
    assert refused == [(batch[1], "offsets 2-2: properties.time: too old")]


async def test_rate_limits_and_server_errors_are_retryable_and_honour_retry_after(fake) -> None:
    saas, url = fake
    config = {"provider": "mixpanel", "projectToken": "mp-project-token", "baseUrl": url}
    saas.inject(429, {"error": "rate limited", "status": 0}, {"Retry-After": "7"})
    with pytest.raises(DeliveryError) as caught:
        await deliver(config, items(2))
    assert caught.value.retryable and caught.value.retry_after_s == 7
    saas.inject(502, {"error": "bad gateway"})
    with pytest.raises(DeliveryError) as caught:
        await deliver(config, items(2))
    assert caught.value.retryable
    await deliver(config, items(2))
    assert len(saas.mixpanel) == 2


async def test_amplitude_httpapi_shape_and_throttling(fake) -> None:
    saas, url = fake
    config = {"provider": "amplitude", "apiKey": "amp-api-key", "baseUrl": url}
    await deliver(config, items(3))
    body = saas.requests[0].body
    assert body["api_key"] == "amp-api-key"
    event = body["events"][0]
    assert event["event_type"] == "agent_completion"
    assert event["user_id"] == "agent-1"  # shorter than 5 characters is fine with min_id_length
    assert event["time"] == 1_795_514_400_000
    assert event["event_properties"]["tokens"] == 1 and event["insert_id"]
    assert len(saas.amplitude) == 3
    saas.inject(429, {"code": 429, "error": "Too many requests for some devices and users"})
    with pytest.raises(DeliveryError) as caught:
        await deliver(config, items(1))
    assert caught.value.retryable and caught.value.retry_after_s == 30


async def test_amplitude_400_drops_only_the_events_it_names(fake) -> None:
    saas, url = fake
    saas.inject(
        400,
        {
            "code": 400,
            "error": "Invalid field values on some events",
            "events_with_invalid_fields": {"time": [1]},
        },
    )
    batch = items(4)
    refused = await deliver(
        {"provider": "amplitude", "apiKey": "amp-api-key", "baseUrl": url}, batch
    )
    assert refused == [(batch[1], "offsets 2-2: invalid_fields: time")]
    # Amplitude ingested nothing from the refused request; the other three were resent.
    assert sorted(e["event_properties"]["tokens"] for e in saas.amplitude.values()) == [1, 3, 4]


async def test_amplitude_413_splits_the_request(fake) -> None:
    saas, url = fake
    saas.max_body_bytes = 4000
    await deliver({"provider": "amplitude", "apiKey": "amp-api-key", "baseUrl": url}, items(30))
    assert len(saas.amplitude) == 30
    assert saas.requests[0].size > 4000  # refused with 413, then halved until it fitted
    assert len(saas.requests) > 2


async def test_custom_provider_posts_a_json_array(fake) -> None:
    saas, url = fake
    await deliver({"provider": "custom", "url": f"{url}/custom"}, items(2))
    assert [e["event"] for e in saas.custom] == ["agent_completion", "agent_completion"]
    assert saas.requests[0].headers["idempotency-key"]


async def test_private_addresses_are_refused_unless_allowed(fake) -> None:
    _, url = fake
    with pytest.raises(DeliveryError) as caught:
        await deliver({"provider": "custom", "url": f"{url}/custom"}, items(1), private=False)
    assert not caught.value.retryable and "non-public" in str(caught.value)


@pytest.mark.parametrize(
    ("config", "loc", "message"),
    [
        ({"provider": "mixpanell"}, ("config", "provider"), "unknown provider 'mixpanell'"),
        ({"provider": "segment"}, ("config", "writeKey"), "'writeKey' is required"),
        ({"provider": "mixpanel"}, ("config", "projectToken"), "'projectToken' is required"),
        (
            {"provider": "amplitude", "apiKey": "k", "baseUrl": "ftp://x"},
            ("config", "baseUrl"),
            "http",
        ),
        ({"provider": "custom", "url": "https://x", "nope": 1}, ("config", "nope"), "Extra"),
    ],
)
def test_validate_names_the_bad_field(config: dict[str, Any], loc: tuple, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        get_destination("analytics").validate(config)
    assert caught.value.loc == loc
    assert message in caught.value.msg


def test_docs_config_with_secret_reference_is_valid() -> None:
    get_destination("analytics").validate(
        {"provider": "mixpanel", "projectToken": "${secrets.MIXPANEL_TOKEN}"}
    )
    get_destination("analytics").validate(
        {"provider": "segment", "writeKey": "${secrets.SEGMENT_KEY}"}
    )
