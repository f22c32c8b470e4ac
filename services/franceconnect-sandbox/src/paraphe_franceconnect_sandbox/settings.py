from paraphe_common.settings import ServiceSettings


class FranceconnectSandboxSettings(ServiceSettings):
    """Read once from the PARAPHE_* environment at start."""
