"""The HTTP API (Litestar + msgspec) in front of the engine."""
