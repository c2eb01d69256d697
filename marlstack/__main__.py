from marlstack.cli import main

raise SystemExit(main())
