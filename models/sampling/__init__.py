"""Sampling: flow-matching solvers, guidance, window planning and the long-video loop."""
