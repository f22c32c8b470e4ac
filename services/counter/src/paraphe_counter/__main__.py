from pathlib import Path

from paraphe_common.runner import main as run_service
from paraphe_counter.app import SERVICE, create_app
from paraphe_counter.marks import rebuild_marks
from paraphe_counter.settings import CounterSettings

MIGRATIONS = Path(__file__).parent / "migrations"


def main() -> None:
    run_service(
        SERVICE,
        CounterSettings,
        create_app,
        migrations=("counter", MIGRATIONS),
        tasks={"rebuild-marks": rebuild_marks},
    )


if __name__ == "__main__":
    main()
