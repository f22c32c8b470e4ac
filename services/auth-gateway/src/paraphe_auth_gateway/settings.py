from paraphe_common.settings import RedisSettings, ServiceSettings


class AuthGatewaySettings(ServiceSettings, RedisSettings):
    """Read once from the PARAPHE_* environment at start."""
