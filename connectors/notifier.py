"""Connector for the notification service (varsel)."""

from __future__ import annotations

from connectors.http import ProviderClient, raise_for_status, send

NOTIFIER = "notifier"


class HttpNotifier:
    """Posts a notification; 2xx means delivered. The `Idempotency-Key` header lets the
    service drop a repeat of the same notification (sent again after a lost answer)."""

    def __init__(self, url: str, client: ProviderClient) -> None:
        self._url = url
        self._client = client

    async def send(self, payload: dict[str, str], idempotency_key: str) -> None:
        request = self._client.build_request("POST", self._url, json=payload,
                                             headers={"Idempotency-Key": idempotency_key})
        response = await send(NOTIFIER, self._client, request)
        raise_for_status(NOTIFIER, response)
