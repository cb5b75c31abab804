"""Sequence models: LSTM/GRU cells from the equations, fused fast paths, char LM and last-step tasks."""
