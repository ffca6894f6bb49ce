"""CLI command groups, one module each; each defines ``register(cli)``."""
