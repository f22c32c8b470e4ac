from paraphe_auth_gateway.app import SERVICE, create_app
from paraphe_auth_gateway.settings import AuthGatewaySettings
from paraphe_common.runner import main as run_service


def main() -> None:
    run_service(SERVICE, AuthGatewaySettings, create_app)


if __name__ == "__main__":
    main()
