from pathlib import Path

from plumbing import cli
from scoring import rebuild, weekly_report
from scoring.app import create_app
from scoring.settings import ScoringSettings


def main() -> None:
    cli.run(
        service="scoring",
        schema="scoring",
        migrations_dir=Path(__file__).parent / "migrations",
        settings_factory=ScoringSettings,
        app_factory=create_app,
        extra_commands={"rebuild": rebuild.command, "weekly-report": weekly_report.command},
    )


if __name__ == "__main__":
    main()
