"""Node drills: a real TradingNode against the venue, detected through the real alerting path (kit.py, stack.py)."""
