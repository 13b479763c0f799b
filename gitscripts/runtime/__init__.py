"""What scripts run by gitscripts can import (standard library only: it runs inside the sandbox)."""
