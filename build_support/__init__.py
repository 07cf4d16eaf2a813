"""Build helpers: the in-tree build backend and the compiled risk core (``core_build``)."""
