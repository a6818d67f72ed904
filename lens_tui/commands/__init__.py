"""One module per group of ``lens`` subcommands; each is a thin shell over ``core``.

Command modules must not import torch, transformers or textual at import time:
``lens --help`` and the analysis commands stay fast and torch-free.
"""
