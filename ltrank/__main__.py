"""``python -m ltrank``: the same CLI as the ``ltrank`` command (also what ``torchrun -m ltrank`` runs)."""

from ltrank.cli.app import main

if __name__ == "__main__":
    main()
