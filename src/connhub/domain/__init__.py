"""What a connection is and the rules it obeys. Pure: no I/O, no web framework."""
