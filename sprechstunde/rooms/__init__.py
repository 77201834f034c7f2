"""Rooms, roles, join tokens and staff accounts: who may enter which consultation."""
