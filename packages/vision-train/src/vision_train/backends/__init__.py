"""Training backends, registered with the kernel through entry points (vision.trainers)."""
