"""Device profiles shipped with edge-runtime (TOML files beside this module)."""
