"""Cloud receiver daemon."""
