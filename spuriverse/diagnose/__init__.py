"""Diagnostics of trained models: which training examples taught a behaviour (`influence`)."""
