from __future__ import annotations

from tcpwatch.cli import main

raise SystemExit(main())
