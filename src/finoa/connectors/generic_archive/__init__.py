"""A generic REST external archive system (kind `archive`): packages pushed in, status back."""
