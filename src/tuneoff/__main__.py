"""`python -m tuneoff`: the `tuneoff` command."""
from tuneoff.cli import main

main()
