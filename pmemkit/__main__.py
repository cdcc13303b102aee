"""`python3 -m pmemkit`: how the guest runs pmemkit from the host's read-only checkout."""

from pmemkit.cli import main

main()
