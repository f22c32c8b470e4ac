from pathlib import Path

from paraphe_common.runner import main as run_service
from paraphe_petition_catalog.app import SERVICE, create_app
from paraphe_petition_catalog.settings import PetitionCatalogSettings

MIGRATIONS = Path(__file__).parent / "migrations"


def main() -> None:
    run_service(SERVICE, PetitionCatalogSettings, create_app, migrations=("catalog", MIGRATIONS))


if __name__ == "__main__":
    main()
