"""Documentation tables the code already holds, written out (``make docs``); a test fails when they are stale."""
