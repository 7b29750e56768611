"""Plan search: enumerate valid plans, prune what cannot fit, evaluate, refine the best."""
