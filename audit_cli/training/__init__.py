"""Training networks: the K-at-once loop (loop.py) and the batched MLP it runs on (batched_mlp.py)."""
