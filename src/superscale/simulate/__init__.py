"""Engines that turn a lowered program into step time: analytical (closed form) for now."""
