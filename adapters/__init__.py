"""The world outside the engine: Binance translation, the live runtime, the local exchange."""
