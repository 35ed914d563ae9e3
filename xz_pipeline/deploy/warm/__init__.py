"""A run launcher that starts each run in a fork of a warm process (the code already imported)."""
