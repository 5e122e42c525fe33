import sys

try:
    from study.cli import main
except KeyboardInterrupt:  # Ctrl-C in the first instant: no traceback (main handles it from here on)
    sys.exit(130)

sys.exit(main())
