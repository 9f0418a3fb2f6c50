"""Outputs: the snapshot table and JSON document, event lines, recordings."""
