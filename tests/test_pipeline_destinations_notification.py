"""The notification destination: template rendering and delivery to a local Slack webhook."""

from __future__ import annotations

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
from deeployd.pipelines.destinations.notification import render
from deeployd.pipelines.transforms import OutItem
from deeployd.services import Services
from deeployd.settings import Settings
from tests.conftest import Org, RunningApi
from tests.fakes import serve
from tests.fakes.slack import HOOK_PATH, SlackFake
from tests.pipeline_helpers import auth, eventually


@pytest.fixture
async def slack() -> AsyncIterator[tuple[SlackFake, str]]:
    fake = SlackFake()
    async with serve(fake.app) as url:
        yield fake, url


def out(values: list[dict[str, Any]]) -> list[OutItem]:
    return [
        OutItem(value=v, first_offset=i, last_offset=i, ingest_ms=0)
        for i, v in enumerate(values, start=1)
    ]


async def deliver(config: dict[str, Any], batch: list[OutItem]) -> list[OutItem]:
    delivered: list[OutItem] = []
    async with httpx.AsyncClient() as http:
        ctx = DeliveryContext(
            org_id="org_test",
            pipeline_id="pl_notify",
            config=config,
            http=http,
            settings=Settings(allow_private_urls=True),
            db=None,  # type: ignore[arg-type]
            progress=delivered.append,
        )
        await get_destination("notification").deliver(ctx, Delivery(items=batch))
    return delivered


def test_template_fills_nested_fields_renders_missing_as_empty_and_escapes_for_slack() -> None:
    item = {"agentName": "Support <@U123> & co", "usage": {"total": 42}, "tags": ["a", "b"]}
    template = "Agent {{agentName}} used {{ usage.total }} tokens {{tags}} {{missing.field}}<!here>"
    assert render(template, item, slack=True) == (
        'Agent Support &lt;@U123&gt; &amp; co used 42 tokens ["a","b"] <!here>'
    )
    assert render("{{agentName}}", item, slack=False) == "Support <@U123> & co"
    # Placeholders are paths, not code: anything else stays literal text.
    assert render("{{__import__('os')}} {{a+b}}", item, slack=True) == (
        "{{__import__('os')}} {{a+b}}"
    )


async def test_slack_gets_one_message_per_item(slack) -> None:
    fake, url = slack
    items = out([{"agentName": "alpha", "tokens": 10}, {"agentName": "beta", "tokens": 20}])
    delivered = await deliver(
        {
            "channel": "slack",
            "webhook": url + HOOK_PATH,
            "template": "Agent {{agentName}} completed with {{tokens}} tokens",
        },
        items,
    )
    assert fake.messages == [
        {"text": "Agent alpha completed with 10 tokens"},
        {"text": "Agent beta completed with 20 tokens"},
    ]
    assert delivered == items


async def test_many_items_are_packed_into_at_most_max_messages(slack) -> None:
    fake, url = slack
    items = out([{"n": i} for i in range(95)])
    await deliver(
        {"channel": "slack", "webhook": url + HOOK_PATH, "template": "n={{n}}", "maxMessages": 10},
        items,
    )
    assert len(fake.messages) == 10
    lines = [line for m in fake.messages for line in m["text"].split("\n")]
    assert lines == [f"n={i}" for i in range(95)]


async def test_slack_errors_map_to_retryable_or_not(slack) -> None:
    fake, url = slack
    fake.rate_limit_next = 1
    config = {"channel": "slack", "webhook": url + HOOK_PATH, "template": "{{n}}"}
    with pytest.raises(DeliveryError) as caught:
        await deliver(config, out([{"n": 1}]))
    assert caught.value.retryable and caught.value.retry_after_s == 1
    with pytest.raises(DeliveryError) as caught:
        await deliver({**config, "webhook": url + "/services/T0/B0/wrong"}, out([{"n": 1}]))
    assert not caught.value.retryable and "no_service" in str(caught.value)
    assert "wrong" not in str(caught.value)  # the webhook URL is the credential


async def test_generic_webhook_channel_posts_text_and_item(slack) -> None:
    fake, url = slack
    await deliver(
        {"channel": "webhook", "url": url + "/hook", "template": "{{a}} & {{b}}"},
        out([{"a": "<x>", "b": 2}]),
    )
    assert fake.generic == [{"text": "<x> & 2", "item": {"a": "<x>", "b": 2}}]


@pytest.mark.parametrize(
    ("config", "loc"),
    [
        ({"channel": "email"}, ("config", "channel")),
        ({"channel": "slack", "template": "x"}, ("config", "webhook")),
        ({"channel": "webhook"}, ("config", "url")),
        (
            {"channel": "slack", "webhook": "https://x", "maxMessages": 500},
            ("config", "maxMessages"),
        ),
    ],
)
def test_validate_names_the_bad_field(config: dict[str, Any], loc: tuple) -> None:
    with pytest.raises(ConfigError) as caught:
        get_destination("notification").validate(config)
    assert caught.value.loc == loc


def test_docs_example_config_is_valid() -> None:
    get_destination("notification").validate(
        {
            "channel": "slack",
            "webhook": "${secrets.SLACK_WEBHOOK}",
            "template": "Agent {{agentName}} completed with {{tokens}} tokens",
        }
    )


async def test_a_pipeline_posts_to_slack_through_the_secret_webhook(
    api: RunningApi, org: Org, worker: Services, slack
) -> None:
    fake, url = slack
    async with httpx.AsyncClient(base_url=api.url, headers=auth(org.admin_key)) as http:
        response = await http.post(
            "/api/secrets", json={"name": "SLACK_WEBHOOK", "value": url + HOOK_PATH}
        )
        assert response.status_code == 201, response.text
        response = await http.post(
            "/api/streaming/pipelines",
            json={
                "name": "runs-to-slack",
                "source": {"type": "webhook"},
                "transforms": [
                    {
                        "type": "map",
                        "config": {
                            "expression": {"agentName": "agentName", "tokens": "tokenUsage.total"}
                        },
                    }
                ],
                "destination": {
                    "type": "notification",
                    "config": {
                        "channel": "slack",
                        "webhook": "${secrets.SLACK_WEBHOOK}",
                        "template": "Agent {{agentName}} completed with {{tokens}} tokens",
                    },
                },
            },
        )
        assert response.status_code == 201, response.text
        pipeline_id = response.json()["id"]
        assert "XXXXSECRET" not in response.text  # the reference is stored, not the URL
        response = await http.post(f"/api/streaming/pipelines/{pipeline_id}/start")
        assert response.status_code == 200, response.text
        response = await http.post(
            f"/api/streaming/pipelines/{pipeline_id}/batch",
            json=[
                {"agentName": "Support <bot>", "tokenUsage": {"total": 120}},
                {"agentName": "Research", "tokenUsage": {"total": 80}},
            ],
        )
        assert response.status_code == 202, response.text

        async def count() -> int:
            return len(fake.messages)

        await eventually(count, lambda n: n >= 2)
    assert fake.messages == [
        {"text": "Agent Support &lt;bot&gt; completed with 120 tokens"},
        {"text": "Agent Research completed with 80 tokens"},
    ]
