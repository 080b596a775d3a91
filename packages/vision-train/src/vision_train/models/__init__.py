"""Model building and checkpoint reading, one module per architecture (no training here)."""
