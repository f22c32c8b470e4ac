"""signature-intake: Accepts signatures: verify the token, dedupe, publish to JetStream."""
