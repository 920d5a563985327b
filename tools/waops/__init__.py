"""``nxwa``: operate a deployed stack or the local one (send a message, list and redrive the dead-letter queue)."""
