"""Separation networks: the model contract, the architectures and the table that names them.

Importing this package is light (no PyTorch): :mod:`unmix.models.architectures` only names
the architectures; their networks load when one is built.
"""
