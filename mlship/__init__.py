"""mlship: take a trained ML model to production and keep it healthy there."""

__version__ = "0.1.0"
