from pathlib import Path

from plumbing import cli
from scoring.app import create_app
from scoring.settings import ScoringSettings


def main() -> None:
    cli.run(
        service="scoring",
        schema="scoring",
        migrations_dir=Path(__file__).parent / "migrations",
        settings_factory=ScoringSettings,
        app_factory=create_app,
    )


if __name__ == "__main__":
    main()
