"""Cost models: how long an op takes on given hardware."""
