from pathlib import Path

from plumbing import cli
from survey_dispatch.app import create_app
from survey_dispatch.settings import DispatchSettings


def main() -> None:
    cli.run(
        service="survey-dispatch",
        schema="survey_dispatch",
        migrations_dir=Path(__file__).parent / "migrations",
        settings_factory=DispatchSettings,
        app_factory=create_app,
    )


if __name__ == "__main__":
    main()
