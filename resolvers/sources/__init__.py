"""The coverage catalogue: sources and how they answered."""
