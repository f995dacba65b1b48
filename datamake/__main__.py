"""`python -m datamake`."""
from .cli import main

main()
