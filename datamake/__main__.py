"""`python -m datamake`."""
from .cli import entry

entry()
