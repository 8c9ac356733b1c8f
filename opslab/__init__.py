"""TradingChassis Ops Lab: a local-first operations lab around NautilusTrader."""

__version__ = "0.1.0"
