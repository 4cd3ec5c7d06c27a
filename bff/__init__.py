"""Timeavtaler BFF: one list of a citizen's health appointments, gathered from many providers."""
