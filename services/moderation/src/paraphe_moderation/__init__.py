"""moderation: Admissibility review, committee allocation, decisions and their audit log."""
