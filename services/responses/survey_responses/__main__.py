from pathlib import Path

from plumbing import cli
from survey_responses.app import create_app
from survey_responses.settings import ResponsesSettings


def main() -> None:
    cli.run(
        service="responses",
        schema="survey_responses",
        migrations_dir=Path(__file__).parent / "migrations",
        settings_factory=ResponsesSettings,
        app_factory=create_app,
        proxy_headers=False,  # the app trusts TRUSTED_PROXIES only (see ratelimit.ClientAddress)
    )


if __name__ == "__main__":
    main()
