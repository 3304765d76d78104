import sys

from questa_torch_learner.worker import main

sys.exit(main(sys.argv[1:]))
