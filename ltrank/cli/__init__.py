"""The ``ltrank`` command line: one module per command; :mod:`ltrank.cli.app` wires them."""
