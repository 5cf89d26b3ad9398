from ticker.cli import main

raise SystemExit(main())
