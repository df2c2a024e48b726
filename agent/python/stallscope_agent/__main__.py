"""python -m stallscope_agent app.py [args] : runs app.py as __main__ with the agent attached.
Also `python -m stallscope_agent -m package [args]` for a module."""

import runpy
import sys

from . import install

USAGE = "usage: python -m stallscope_agent app.py [args]  |  python -m stallscope_agent -m module [args]"


def main():
    args = sys.argv[1:]
    if not args or args[0] in ("-h", "--help"):
        sys.stderr.write(USAGE + "\n")
        sys.exit(0 if args else 2)
    install()
    if args[0] == "-m":
        if len(args) < 2:
            sys.stderr.write(USAGE + "\n")
            sys.exit(2)
        sys.argv = args[1:]
        runpy.run_module(args[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = args
        sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.abspath(args[0])))
        runpy.run_path(args[0], run_name="__main__")


main()
