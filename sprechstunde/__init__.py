"""Sprechstunde: video consultations for public administrations.

One importable package; its sub-packages are listed (with the rules for what may import what) in
docs/architecture.md.
"""
