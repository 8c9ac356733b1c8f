"""Engine room: the only place NautilusTrader is imported (lazily, inside functions)."""
