"""The GraphQL layer: Strawberry types, queries, mutation, subscription and dataloaders."""
