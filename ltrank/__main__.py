"""``python -m ltrank`` (and ``torchrun -m ltrank``): the same command line as the ``ltrank`` script."""

from ltrank.cli.app import main

if __name__ == "__main__":
    main()
