"""The citizen's activity log: who has read or changed their appointments."""
