from __future__ import annotations

from pydantic import SecretStr

from plumbing.settings import ServiceSettings


class ResponsesSettings(ServiceSettings):
    http_port: int = 8002
    public_results_base_url: str = "http://127.0.0.1:8004"
    public_optout_base_url: str = "http://127.0.0.1:8001"
    csrf_secret: SecretStr = SecretStr("dev-csrf-secret-change-me")
