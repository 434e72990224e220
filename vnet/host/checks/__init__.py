"""Host capability checks, one small registered function each (see vnet/host/check.py)."""
