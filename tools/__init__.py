"""The ``replaymm`` command line and developer tools."""
