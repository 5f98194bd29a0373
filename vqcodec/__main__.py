"""`python -m vqcodec`: the `vqcodec` command line."""

from vqcodec.cli import main

if __name__ == "__main__":
    main()
