"""Schedule parity: the service against the real reference libraries."""
