"""The application layer (L2): config, daemon wiring, CLI."""
