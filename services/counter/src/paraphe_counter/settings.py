from paraphe_common.settings import NatsSettings, PostgresSettings, RedisSettings, ServiceSettings


class CounterSettings(ServiceSettings, PostgresSettings, RedisSettings, NatsSettings):
    """Read once from the PARAPHE_* environment at start."""
