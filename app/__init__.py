"""Encore: self-hostable automated webinars."""

__version__ = "0.1.0"
