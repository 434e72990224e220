"""What this host can do: kernel features a lab may need, probed without touching the host."""
