"""The lowered per-device program's vocabulary: the ops that lowering builds and costs price."""
