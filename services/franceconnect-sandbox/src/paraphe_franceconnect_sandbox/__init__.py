"""franceconnect-sandbox: a local OpenID Connect provider playing FranceConnect.

For development and tests only; the production overlay never deploys it.
"""
