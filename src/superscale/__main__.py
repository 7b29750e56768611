"""`python -m superscale`: the command line, as the `superscale` console script."""

from superscale.cli import entry

if __name__ == "__main__":
    entry()
