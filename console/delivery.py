"""Compatibility: delivery moved to ``agentdeck.console.service.delivery``."""

from agentdeck.console.service.delivery import (  # noqa: F401
    CLAIM_SECONDS, RETRYABLE_STATUS, DeliverySettings, deliver_one,
)
