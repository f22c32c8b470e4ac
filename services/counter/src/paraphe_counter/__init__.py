"""counter: Consumes signatures, stores them once, keeps sharded counts and thresholds."""
