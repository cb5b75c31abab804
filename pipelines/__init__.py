"""Composition roots, the ``adl`` CLI, the tracker and the thin Ray layer."""
