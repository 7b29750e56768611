"""`python -m superscale.cli ...`: the same CLI as the `superscale` command."""

from superscale.cli import entry

entry()
