"""Predictions against published measurements (shared/reference, shipped as package data)."""
