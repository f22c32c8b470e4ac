from paraphe_common.settings import NatsSettings, PostgresSettings, ServiceSettings


class ModerationSettings(ServiceSettings, PostgresSettings, NatsSettings):
    """Read once from the PARAPHE_* environment at start."""
