"""Lab drills: fast, in-process rehearsals against the venue, the kill switch and reconciliation."""
