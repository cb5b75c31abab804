"""The thin Ray layer: actors, Tune trials and cluster connection around the pure components."""
