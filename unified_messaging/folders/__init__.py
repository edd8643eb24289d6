"""What both folder interfaces (insurability ``toQuery``, invoicing ``toSend``) share.

``files``: crash-safe file operations (atomic write, fsync of a folder, the one clash rule
``stem.2.ext``, moves with a reason file); ``events``: the one watcher loop (raw file-system
events, rescan as the safety net).  :mod:`unified_messaging.folders.watcher` builds the claim-and-handle
pickup on them; the invoicing pipeline runs its own claim on the same loop.
"""
