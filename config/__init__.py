"""Typed settings and the files a city edits (departments, routing rules, deadlines, Asterisk samples)."""
from config.settings import Settings, SettingsError, load_settings

__all__ = ["Settings", "SettingsError", "load_settings"]
