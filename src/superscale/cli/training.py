"""`superscale simulate` and `validate`: training step time, memory and MFU."""
