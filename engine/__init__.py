"""The booking engine: slot arithmetic, the Redis model and the typed wrappers around its Lua scripts.

Nothing in this package imports litestar or sqlalchemy.
"""
