from paraphe_common.settings import NatsSettings, RedisSettings, ServiceSettings


class SignatureIntakeSettings(ServiceSettings, RedisSettings, NatsSettings):
    """Read once from the PARAPHE_* environment at start."""
