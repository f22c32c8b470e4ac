from paraphe_common.runner import main as run_service
from paraphe_signature_intake.app import SERVICE, create_app
from paraphe_signature_intake.settings import SignatureIntakeSettings


def main() -> None:
    run_service(SERVICE, SignatureIntakeSettings, create_app)


if __name__ == "__main__":
    main()
