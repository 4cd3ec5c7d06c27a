"""Appointments: the list, one appointment, and the cancellation requests attached to them."""
