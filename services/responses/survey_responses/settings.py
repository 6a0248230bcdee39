from __future__ import annotations

from pydantic import Field, SecretStr

from plumbing.settings import ServiceSettings
from survey_responses.domain import Legal


class ResponsesSettings(ServiceSettings):
    http_port: int = 8002
    # Every statement of this service is self-contained (no SET, no session lock, no LISTEN left
    # behind: the outbox relay UNLISTENs when it lets its connection go), so a released
    # connection skips asyncpg's reset query: one round trip less per request.
    database_reset_session: bool = False
    # Each answer is its own transaction and NOTIFY: without a pause the relay makes one round
    # (5 statements and a produce request) per answer. 50 ms batches them; scoring hardly waits.
    outbox_linger_seconds: float = 0.05
    public_results_base_url: str = "http://127.0.0.1:8004"
    public_optout_base_url: str = "http://127.0.0.1:8001"
    csrf_secret: SecretStr = SecretStr("dev-csrf-secret-change-me")
    # Rate limits are in-process token buckets: behind N replicas the real limit is N times these.
    # A reception hall's wifi puts many honest users behind one address: keep the IP limit loose.
    # Behind an ingress, the address is the user's only if the ingress is trusted (see
    # `trusted_proxies`); otherwise every user shares the ingress's bucket.
    rate_limit_ip_per_minute: int = Field(default=120, ge=0, description="0 disables it.")
    rate_limit_ip_burst: int = Field(default=60, ge=1)
    rate_limit_token_per_minute: int = Field(
        default=20, ge=0, description="Posts (answers, drafts) a minute on one link; 0 disables it."
    )
    rate_limit_token_burst: int = Field(default=10, ge=1)
    hsts_always: bool = Field(
        default=False, description="Send HSTS on every response, not only behind TLS."
    )

    free_text_retention_days: int = Field(
        default=180, ge=1, description="Free-text answers are dropped this long after answering."
    )
    inbox_retention_days: int = Field(
        default=45, ge=1, description="Handled event ids kept (more than the topics' 30 days)."
    )
    retention_interval_seconds: float = Field(default=3600, gt=0)
    # The pages a public-service form must link (/donnees-personnelles, /mentions-legales,
    # /accessibilite): who is responsible, publishes, hosts, and answers for accessibility.
    legal_controller: str = Legal.controller
    legal_controller_address: str = Legal.controller_address
    legal_publication_director: str = Legal.publication_director
    legal_dpo_contact: str = Legal.dpo_contact
    legal_host: str = Legal.host
    legal_accessibility_contact: str = Legal.accessibility_contact
    legal_accessibility_status: str = Field(
        default=Legal.accessibility_status,
        description="« partiellement conforme » until a full RGAA 4.1 audit says otherwise.",
    )

    def legal(self) -> Legal:
        return Legal(
            controller=self.legal_controller,
            controller_address=self.legal_controller_address,
            publication_director=self.legal_publication_director,
            dpo_contact=self.legal_dpo_contact,
            host=self.legal_host,
            accessibility_contact=self.legal_accessibility_contact,
            accessibility_status=self.legal_accessibility_status,
            free_text_retention_days=self.free_text_retention_days,
        )
