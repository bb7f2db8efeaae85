"""Serving-side code used by the BentoML service in bento/service.py (and packaged into every Bento)."""
