from paraphe_common.settings import NatsSettings, PostgresSettings, ServiceSettings


class PetitionCatalogSettings(ServiceSettings, PostgresSettings, NatsSettings):
    """Read once from the PARAPHE_* environment at start."""
