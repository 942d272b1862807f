"""Jifen's core: every rule about loyalty points, and the services that apply them."""

__version__ = "0.1.0"
