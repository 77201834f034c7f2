"""The pages every city must publish (issue 18): accessibility statement with its feedback form, Leichte
Sprache, sign language, privacy notice and imprint — configured per city in one TOML file (`--city`)."""
