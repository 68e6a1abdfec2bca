"""`python -m tuneoff.cli`: the `tuneoff` command."""
from tuneoff.cli import main

main()
