from lrserve.cli import main

raise SystemExit(main())
