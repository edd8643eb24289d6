"""What an operator does to an install: back it up, restore it, rotate its master key.

``instance`` is the lock that tells a running service from a stopped one; ``rotation``,
``backup`` and ``restore`` are the operations; ``cli`` their commands.
"""
