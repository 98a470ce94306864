"""The `jaz` command line: one module per noun, composed in `app.py`."""
