from ylg.cli import main

raise SystemExit(main())
