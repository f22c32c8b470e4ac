from paraphe_common.runner import main as run_service
from paraphe_franceconnect_sandbox.app import SERVICE, create_app
from paraphe_franceconnect_sandbox.settings import FranceconnectSandboxSettings


def main() -> None:
    run_service(SERVICE, FranceconnectSandboxSettings, create_app)


if __name__ == "__main__":
    main()
