"""Cancelling: the mutation, the live updates, and their types."""
