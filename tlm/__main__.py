"""``python -m tlm``: the ``tlm`` command line."""

from tlm.cli import main

if __name__ == "__main__":
    main(prog_name="tlm")
