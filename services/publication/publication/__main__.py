from pathlib import Path

from plumbing import cli
from publication.app import create_app
from publication.settings import PublicationSettings


def main() -> None:
    cli.run(
        service="publication",
        schema="publication",
        migrations_dir=Path(__file__).parent / "migrations",
        settings_factory=PublicationSettings,
        app_factory=create_app,
        proxy_headers=False,  # the app trusts TRUSTED_PROXIES only (domain.client_address)
    )


if __name__ == "__main__":
    main()
