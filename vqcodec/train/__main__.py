"""`python -m vqcodec.train [--config FILE] [--resume] key=value ...`"""

import sys

from .commands import train_command

if __name__ == "__main__":
    sys.exit(train_command(prog_name="python -m vqcodec.train"))
