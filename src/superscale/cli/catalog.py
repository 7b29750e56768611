"""`superscale catalog`, `show` and `check`: browse the catalogs and validate scenarios."""
