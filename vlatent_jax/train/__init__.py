"""Training: optimizer (optim.py), the pure train step (step.py)."""
