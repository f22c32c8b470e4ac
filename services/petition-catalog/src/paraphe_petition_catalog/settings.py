from paraphe_common.settings import NatsSettings, PostgresSettings, ServiceSettings
from paraphe_common.tokens import TokenVerificationSettings


class PetitionCatalogSettings(
    ServiceSettings, PostgresSettings, NatsSettings, TokenVerificationSettings
):
    """Read once from the PARAPHE_* environment at start."""
