"""Test-suite settings: hypothesis runs derandomized, so every CI run draws the same examples."""
from hypothesis import settings

settings.register_profile("ripkit", derandomize=True, deadline=None, print_blob=True)
settings.load_profile("ripkit")
