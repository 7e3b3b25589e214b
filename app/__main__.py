"""`python -m app ...`: the Encore command line."""

from app.cli import main

main()
