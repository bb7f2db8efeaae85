"""Sub-commands of the `mlship` CLI, one module per concern."""
