"""File formats, one module each: how they are read and written, with one strictness."""
