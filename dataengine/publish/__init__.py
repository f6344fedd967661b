"""Publishing: a verified LeRobot v3 dataset becomes an immutable, tagged version (local registry or the Hub)."""
