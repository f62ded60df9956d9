"""The query API: routes, API keys, signed page tokens and problem details (``create_app``)."""

from cachesync.api.app import ApiDependencies, CacheSyncResolver, create_app, openapi_json

__all__ = ["ApiDependencies", "CacheSyncResolver", "create_app", "openapi_json"]
