"""franceconnect-sandbox: a local OpenID Connect provider playing FranceConnect v2.

For development and tests only; the production overlay never deploys it. Two providers share
the process: citizens at ``PARAPHE_SANDBOX_ISSUER`` itself, public agents (staff) at
``<issuer>/agents``, each with the FranceConnect v2 paths (``/api/v2/authorize``, ``/token``,
``/userinfo``, ``/session/end``, ``/jwks``) and a discovery document. Relying parties are
registered by ``PARAPHE_SANDBOX_CLIENTS`` (see :mod:`.settings`). ``login_hint=<identity id>``
or ``login_hint=generated:<anything>`` signs in without a page; otherwise a page lets a person
pick a demo identity (:mod:`.identities`).
"""
