"""Everything about reaching Temporal: the client, task queue, search attributes, UI links."""

from __future__ import annotations

import logging
from urllib.parse import quote

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RetryConfig

from deeployd.settings import Settings

log = logging.getLogger(__name__)

# Search attributes let people filter runs in the Temporal UI, e.g. `DeeploydOrgId = "org_…"`.
ORG_ID = SearchAttributeKey.for_keyword("DeeploydOrgId")
AGENT_ID = SearchAttributeKey.for_keyword("DeeploydAgentId")
CONVERSATION_ID = SearchAttributeKey.for_keyword("DeeploydConversationId")
PIPELINE_ID = SearchAttributeKey.for_keyword("DeeploydPipelineId")
PIPELINE_NAME = SearchAttributeKey.for_keyword("DeeploydPipelineName")
CONTEXT_ID = SearchAttributeKey.for_keyword("DeeploydContextId")
STATUS = SearchAttributeKey.for_keyword("DeeploydStatus")

SEARCH_ATTRIBUTES = (
    ORG_ID,
    AGENT_ID,
    CONVERSATION_ID,
    PIPELINE_ID,
    PIPELINE_NAME,
    CONTEXT_ID,
    STATUS,
)


def search_attributes(
    *,
    org_id: str,
    status: str | None = None,
    agent_id: str | None = None,
    conversation_id: str | None = None,
    context_id: str | None = None,
    pipeline_id: str | None = None,
    pipeline_name: str | None = None,
) -> TypedSearchAttributes:
    """The search attributes a workflow or schedule starts with (the ones given)."""
    values = (
        (ORG_ID, org_id),
        (AGENT_ID, agent_id),
        (CONVERSATION_ID, conversation_id),
        (CONTEXT_ID, context_id),
        (PIPELINE_ID, pipeline_id),
        (PIPELINE_NAME, pipeline_name),
        (STATUS, status),
    )
    return TypedSearchAttributes(
        [SearchAttributePair(key, value) for key, value in values if value is not None]
    )


async def connect(settings: Settings, *, max_retry_seconds: float | None = None) -> Client:
    """`max_retry_seconds` bounds how long one call retries while the server is unreachable
    (the API sets it so a request fails with 503 in seconds; the worker keeps the default)."""
    retry = (
        RetryConfig(max_elapsed_time_millis=int(max_retry_seconds * 1000))
        if max_retry_seconds is not None
        else RetryConfig()
    )
    return await Client.connect(
        settings.require_temporal_address(),
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        retry_config=retry,
    )


async def ensure_search_attributes(client: Client) -> None:
    """Register the custom search attributes the workflows set (idempotent)."""
    existing = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace)
    )
    missing = {
        key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
        for key in SEARCH_ATTRIBUTES
        if key.name not in existing.custom_attributes
    }
    if missing:
        log.info("registering search attributes %s", sorted(missing))
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=client.namespace, search_attributes=missing)
        )


def dev_server_search_attribute_flags() -> list[str]:
    flags: list[str] = []
    for key in SEARCH_ATTRIBUTES:
        flags += ["--search-attribute", f"{key.name}=Keyword"]
    return flags


def workflow_url(settings: Settings, workflow_id: str) -> str:
    """Where a person can inspect a workflow in the Temporal Web UI."""
    base = settings.temporal_ui_url.rstrip("/")
    return f"{base}/namespaces/{quote(settings.temporal_namespace)}/workflows/{quote(workflow_id, safe='')}"
