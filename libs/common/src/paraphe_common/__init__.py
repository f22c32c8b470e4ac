"""What every paraphe service shares.

Settings, JSON logs, request ids, RFC 9457 problems, Prometheus metrics, health and readiness,
the PostgreSQL, Redis and NATS clients (one cleanup context each), migrations and the runner
that starts a service and stops it gracefully.
"""
