"""One widget per module, each with its own BINDINGS and DEFAULT_CSS."""
