"""ecliptic.debug: tools to debug traced code."""

# Re-exports only.
