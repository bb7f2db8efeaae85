"""The model pipeline: data, schema, features, training, registry, quality gate and release history.

``data``, ``schema`` and ``features`` are also imported by the model server (see ``mlship.build``), so
this package's ``__init__`` imports nothing.
"""
