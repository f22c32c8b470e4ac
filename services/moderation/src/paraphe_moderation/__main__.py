from pathlib import Path

from paraphe_common.runner import main as run_service
from paraphe_moderation.app import SERVICE, create_app
from paraphe_moderation.settings import ModerationSettings

MIGRATIONS = Path(__file__).parent / "migrations"


def main() -> None:
    run_service(SERVICE, ModerationSettings, create_app, migrations=("moderation", MIGRATIONS))


if __name__ == "__main__":
    main()
