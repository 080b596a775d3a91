"""Training backends: objects registered with the kernel through entry points
(`vision.trainers`); `base.get_backend(name)` finds one, importing only its module."""
