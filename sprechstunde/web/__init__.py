"""The outer ring: aiohttp app factory, routes, pages, static client, CLI and configuration."""
