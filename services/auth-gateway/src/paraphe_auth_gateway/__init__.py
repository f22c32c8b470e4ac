"""auth-gateway: FranceConnect relying party: sign-in, sessions, platform tokens."""
